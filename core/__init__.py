"""Small shared infrastructure every package may use: settings base, resilience helpers."""
