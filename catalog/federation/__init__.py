"""Federation (市县一体化): harvest remote CKAN-compatible catalogs into this one, keeping their provenance.

- models.py: harvest sources, runs, mirror departments, harvested datasets and items (provenance)
- client.py: ckanapi.RemoteCKAN with timeouts, retries and back-off
- mapping.py: a remote package → local dataset fields and items
- harvester.py: incremental runs (one transaction per page), withdrawals, per-source run records
- cli.py: `opendata harvest add | run | list`; endpoints.py: read-only `GET /api/v1/harvest/…`
"""
