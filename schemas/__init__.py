"""The standards registry: data element standards (数据元) as YAML files, and their loader."""
