"""Every model call goes through here: the caller (prices, de-duplication, usage per example) in front of the
response cache and the call log in SQLite."""
