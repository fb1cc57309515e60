"""recipe's engine: everything that knows no platform."""
