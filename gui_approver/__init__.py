"""gui-approver: a human-approved signer for cargo's asymmetric tokens (RFC 3231).

This module must stay import-free: the bridge imports it on cargo's hot path.
"""

__version__ = "0.1.0"
