"""Is a cluster token the one a node's RKE2 already holds? Pure; never prints a token.

RKE2 encrypts a server's bootstrap data with the server token and keeps that token in
`<data-dir>/server/token` in its full form, `K10<CA hash>::server:<password>`; a
cloud-config may give the full form or the password alone (docs.k3s.io/cli/token). A server
handed another token refuses to start ("bootstrap data already found and encrypted with
different token", rancher/rke2#6281) and fails again at every restart.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing costs milliseconds of every boot: annotations only
if TYPE_CHECKING:
    from typing import Optional, Tuple

_FULL = "K10"


def parts(token: str) -> Tuple[Optional[str], str]:
    """(the CA hash of a full token, else None; the credential that authenticates: in a full
    token the password of `user:password`, or the bearer token; a bare token is all password,
    colons included)."""
    token = token.strip()
    if not (token.startswith(_FULL) and "::" in token):
        return None, token
    head, _, credentials = token.partition("::")
    user, colon, password = credentials.partition(":")
    return head[len(_FULL) :], password if colon and user and password else credentials


def same(given: str, held: str) -> bool:
    """Whether RKE2 holding `held` accepts `given`: the same credential, and the same CA hash
    when both name one (a full token of another cluster is not the same token).

    A plain comparison: both values are on this node and the outcome is a boot's success or
    failure, not an answer anyone can time (hmac.compare_digest would load OpenSSL at boot)."""
    given_hash, given_secret = parts(given)
    held_hash, held_secret = parts(held)
    if given_hash and held_hash and given_hash.lower() != held_hash.lower():
        return False
    return given_secret == held_secret
