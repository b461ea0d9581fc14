"""opendata-hub catalog: departments, users, data element standards, datasets and their items (公共数据目录)."""
