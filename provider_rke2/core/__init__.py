"""The pure core: a cloud-config in, a YIP document out, and every rule between them.

No module here does I/O (tests/core/test_layers.py holds it; `schema` and `rke2check` read
the package's own data files beside them): a path is decided in `paths`, a rule in `spec`
and the modules it names, a boot step built in `stages`, the document in `render`.
"""
