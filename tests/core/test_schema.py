"""The boot-time schema interpreter gives jsonschema's answer: same places, same words."""

import copy
import itertools

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from strategies import nested

from provider_rke2.core import schema

from helpers import ROOT

GOLDEN = sorted((ROOT / "stages").rglob("*.yaml"))


def oracle(document, name=schema.YIP, root="yip"):
    return [str(p) for p in schema.jsonschema_problems(document, name, root)]


def ours(document, name=schema.YIP, root="yip"):
    return [str(p) for p in schema.problems(document, name, root)]


def first_file(doc):
    return next(s for s in doc["stages"]["boot.before"] if s.get("files"))["files"][0]


MUTATIONS = {
    "quoted-permission": lambda d: first_file(d).update(permissions="0600"),
    "bool-permission": lambda d: first_file(d).update(permissions=True),
    "negative-permission": lambda d: first_file(d).update(permissions=-1),
    "huge-permission": lambda d: first_file(d).update(permissions=65536),
    "string-owner": lambda d: first_file(d).update(owner="root"),
    "owner_string": lambda d: first_file(d).update(owner_string="root"),
    "relative-path": lambda d: first_file(d).update(path="etc/x"),
    "no-content": lambda d: first_file(d).pop("content"),
    "bad-encoding": lambda d: first_file(d).update(encoding="rot13"),
    "null-content": lambda d: first_file(d).update(content=None),
    "no-name": lambda d: d.pop("name"),
    "empty-name": lambda d: d.update(name=""),
    "extra-top-key": lambda d: d.update(version=1),
    "empty-stages": lambda d: d.update(stages={}),
    "bad-stage-name": lambda d: d["stages"].update({"Boot Before": [{"name": "x"}]}),
    "stage-not-list": lambda d: d["stages"].update({"boot.after": {"name": "x"}}),
    "empty-step-list": lambda d: d["stages"].update({"boot.after": []}),
    "step-unknown-key": lambda d: d["stages"]["boot.before"][0].update(sytemctl={}),
    "empty-commands": lambda d: d["stages"]["boot.before"][0].update(commands=[]),
    "empty-command": lambda d: d["stages"]["boot.before"][0]["commands"].append(""),
    "int-command": lambda d: d["stages"]["boot.before"][0]["commands"].append(5),
    "if-not-string": lambda d: d["stages"]["boot.before"][0].update({"if": ["x"]}),
    "step-not-object": lambda d: d["stages"]["boot.before"].append("step"),
    "document-list": lambda d: d.clear() or d.update(stages=[]),
}


@pytest.mark.parametrize("golden", GOLDEN, ids=lambda p: str(p.relative_to(ROOT / "stages")))
def test_goldens_are_valid_for_both(golden):
    document = yaml.safe_load(golden.read_text())
    assert ours(document) == oracle(document) == []


@pytest.mark.parametrize(
    "golden, mutation",
    list(itertools.product(GOLDEN[:3], MUTATIONS)),
    ids=lambda v: v if isinstance(v, str) else v.name,
)
def test_mutations_fail_in_the_same_places(golden, mutation):
    document = copy.deepcopy(yaml.safe_load(golden.read_text()))
    MUTATIONS[mutation](document)
    expected = oracle(document)
    assert expected, "every mutation breaks the schema"
    assert ours(document) == expected


def test_an_integral_float_is_not_an_integer_for_yip():
    # JSON Schema accepts 384.0 as an integer; yip's Go decoder does not, and would
    # drop every stage of the file, so here the interpreter is deliberately stricter.
    document = yaml.safe_load(GOLDEN[0].read_text())
    first_file(document).update(permissions=384.0)
    assert oracle(document) == []
    assert ours(document) == [
        "yip.stages.boot.before[2].files[0].permissions: expected a whole number, got a number"
    ]


def test_a_schema_keyword_the_interpreter_does_not_know_is_refused():
    with pytest.raises(ValueError, match="uses 'oneOf', which provider_rke2.core.schema does not apply"):
        schema._check_keywords({"properties": {"x": {"oneOf": []}}}, "x.json")


# --- the cluster section ------------------------------------------------------------------------

scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8)
values = nested(scalars, key_size=6, leaves=6)
KEYS = st.sampled_from(
    ["role", "cluster_token", "control_plane_host", "config", "providerConfig", "env", "ca_certs",
     "import_local_images", "local_images_path", "cluster_config_path", "other"]
)  # fmt: skip
ROLES = st.sampled_from(["init", "controlplane", "worker", "master", None, "", 1])


@settings(max_examples=1500, deadline=None)
@given(
    st.dictionaries(KEYS, values | ROLES | st.sampled_from(["/abs", "rel", "yes", "maybe", True]), max_size=8)
)
def test_cluster_sections_get_the_same_answer_from_both(section):
    assert ours(section, schema.CLUSTER, "cluster") == oracle(section, schema.CLUSTER, "cluster")


@pytest.mark.parametrize(
    "section, expected",
    [
        ({"role": "master"}, ["cluster.role: 'master' is not one of init, controlplane, worker"]),
        ({}, ["cluster.role: missing; expected one of init, controlplane, worker"]),
        ({"role": "init", "env": ["x"]}, ["cluster.env: expected a mapping of names to values, got a list"]),
        ({"role": "init", "cluster_config_path": "x"},
         ["cluster.cluster_config_path: expected an absolute path, got 'x'"]),
        ({"role": "init", "import_local_images": "maybe"},
         ["cluster.import_local_images: expected true or false, got 'maybe'"]),
    ],
)  # fmt: skip
def test_cluster_messages_name_the_field_and_what_was_expected(section, expected):
    assert ours(section, schema.CLUSTER, "cluster") == expected == oracle(section, schema.CLUSTER, "cluster")


def test_the_roles_the_schema_takes_are_the_roles_the_provider_knows():
    from provider_rke2.core.paths import ROLES

    assert schema.load(schema.CLUSTER)["properties"]["role"]["enum"] == list(ROLES)
