"""Real servers the tests run against: nginx, started from a generated config."""
