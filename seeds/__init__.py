"""Demo data for 示范市: departments, users, the declared inventory and catalogued datasets (YAML)."""
