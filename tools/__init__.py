"""What people and CI run, never a service: the `mgrid` CLI and its command groups, the local stack, the
contract generator. Nothing under contracts/, libs/ or services/ imports it (tests/unit/test_import_direction.py)."""
