"""The rules policy: deterministic, data-grounded decisions with no network and no key."""
