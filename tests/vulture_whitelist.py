"""Names vulture cannot see used: read by the C JSON scanner, the http.server, Xlib, keyring,
a serialiser (dataclass fields written to JSON) or kept only as a reference. See
``[tool.vulture]`` in pyproject.toml."""

# ruff: noqa: B018 - bare names are what vulture reads here
# mypy: ignore-errors
_ = None

# client/records.py: the settings object json's C scanner reads
_.object_hook
_.object_pairs_hook
_.parse_float
_.parse_int
_.parse_constant

# dataclass fields written to JSON or shown as data
_.already_stored  # core/keys/flows.py TokenImport
_.token_serial  # core/keys/pkcs11.py KeyInfo
_.handled_at  # core/watch.py Alert
_.header_offset  # review/archive.py RawMember
_.documentation  # review/contents.py ManifestInfo
_.old_sha256  # review/history.py
_.new_sha256
_.current_vers

# registry/server.py: what socketserver/http.server read
_.daemon_threads
_.address_family
_.protocol_version
_.server_version
_.sys_version
_.disable_nagle_algorithm

# ui/app.py: keeps the signal wake-up sockets alive
_._socks

# ui/x11guard.py: the XInput2 event type numbers, named in one table
_.XI_KEY_PRESS
_.XI_KEY_RELEASE
_.XI_FOCUS_IN
_.XI_FOCUS_OUT
_.XI_LEAVE
_.XI_RAW_BUTTON_PRESS
_.XI_RAW_BUTTON_RELEASE

# tests: set for Xlib and keyring, which read them
_.override_redirect
_._keyring_backend
