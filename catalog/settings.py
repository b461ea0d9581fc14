"""The one settings object. Every value comes from an environment variable (or its default)."""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ODH_", extra="ignore")

    # Root for everything the embedded default keeps on disk (SQLite file, Parquet storage).
    data_dir: Path = Path("./var")
    # SQLAlchemy URL. Empty means the embedded default: a SQLite file under data_dir.
    database_url: str = Field(default="", validation_alias=AliasChoices("DATABASE_URL", "ODH_DATABASE_URL"))
    # fsspec URL or local path for published Parquet snapshots; empty means data_dir/storage.
    storage_root: str = ""
    # Used to sign session cookies and as a pepper for API-token hashes.
    secret_key: str = "dev-only-change-me"
    # Largest page size any list endpoint returns.
    max_page_size: int = 100
    # Largest file a delivery (归集) may upload, in bytes.
    max_upload_bytes: int = 4 * 1024**3
    # Search result cache entries per process (0 disables it).
    search_cache_size: int = 512
    # Sharing gateway. Rate-limit counters live here: memory:// is per process (the embedded demo runs one worker);
    # with several workers use the shared redis://127.0.0.1:6379.
    rate_limit_storage: str = "memory://"
    gateway_default_requests_per_minute: int = 600
    gateway_default_rows_per_day: int = 100_000
    # Largest page a JSON or CSV call returns; Arrow and Parquet return up to the response-size ceiling.
    gateway_max_page_rows: int = 1000
    gateway_max_response_bytes: int = 256 * 1024**2
    # Published versions kept decoded in memory per worker, in bytes.
    gateway_table_cache_bytes: int = 2 * 1024**3
    # Objection marks (异议标注) are re-read from the tickets at most this often, in seconds.
    gateway_objection_refresh_seconds: float = 30.0
    # Browser session cookies carry the Secure flag (set true behind HTTPS).
    cookie_secure: bool = False
    # Anonymous downloads from the open-data portal, per client address.
    open_rate_limit: str = "30/minute"

    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'opendata.db').resolve()}"

    def resolved_storage_root(self) -> str:
        return self.storage_root or str((self.data_dir / "storage").resolve())


@lru_cache
def get_settings() -> Settings:
    return Settings()
