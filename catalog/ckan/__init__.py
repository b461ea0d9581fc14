"""CKAN Action API compatibility (`/api/3/action/{name}`, `/api/action/{name}`).

`mapping.py` turns a catalog dataset into a CKAN package (and CKAN-shaped input back into DatasetCreate /
DatasetUpdate), `actions.py` holds the actions as plain functions over a session and the caller, `datastore.py` serves
`datastore_search` through the sharing gateway's runtime, and `router.py` speaks CKAN's HTTP envelope. Choices and
deviations from CKAN are listed in `mapping.py`'s docstring.
"""
