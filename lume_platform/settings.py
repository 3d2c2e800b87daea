"""The service environment (``LUME_*`` variables) as typed settings, with embedded defaults for local mode."""

from __future__ import annotations

import os
from collections.abc import Mapping
from contextvars import ContextVar
from pathlib import Path
from typing import Any, Literal
from urllib.parse import quote_plus, urlencode

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError
from pydantic_settings import BaseSettings, EnvSettingsSource, PydanticBaseSettingsSource, SettingsConfigDict
from pydantic_settings.sources.utils import parse_env_vars
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from lume_platform.errors import ConfigurationError

ENV_PREFIX = "LUME_"
NESTED_DELIMITER = "__"
DEFAULT_RESULTS_DATABASE = "lume"
Port = int


def env_name(*parts: str) -> str:
    """The environment variable that sets the setting at ``parts`` (``("model_db", "host")``)."""
    return ENV_PREFIX + NESTED_DELIMITER.join(part.upper() for part in parts)


# load_settings(environ=...) reads a given mapping instead of os.environ, without touching the process env.
_ENVIRON: ContextVar[Mapping[str, str] | None] = ContextVar("lume_settings_environ", default=None)


def _environ() -> Mapping[str, str]:
    environ = _ENVIRON.get()
    return os.environ if environ is None else environ


def default_home() -> Path:
    """Where the embedded mode keeps its data when ``LUME_HOME`` is not set (XDG data directory)."""
    data_home = _environ().get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(data_home) / "lume"


# A problem is (variable name, what is wrong with it); ConfigurationError lists them all at once.
Problem = tuple[str, str]


def _missing(group: str, fields: list[str], values: dict[str, Any]) -> list[Problem]:
    return [(env_name(group, name), "is required") for name in fields if values.get(name) is None]


class _Group(BaseModel):
    # Forbidding extras turns a typo such as LUME_MODEL_DB__HOTS into an error that names it.
    model_config = ConfigDict(extra="forbid", frozen=True)


class ConnectionSettings(_Group):
    """SQLAlchemy pool options (LUME-services' ``LUME_MODEL_DB__CONNECTION__*``)."""

    pool_size: int | None = Field(default=None, ge=1)
    pool_pre_ping: bool = True


class ModelDBSettings(_Group):
    """The model registry: MySQL from host/port/user/password/database, or any SQLAlchemy URL."""

    url: str | None = None
    host: str | None = None
    port: Port | None = Field(default=None, ge=1, le=65535)
    user: str | None = None
    password: SecretStr | None = None
    database: str | None = None
    dialect_str: str = "mysql+pymysql"
    connection: ConnectionSettings = ConnectionSettings()

    _PARTS = ("host", "port", "user", "password", "database")

    def problems(self) -> list[Problem]:
        """Every variable of this group that is missing, conflicting or malformed."""
        given = {name: getattr(self, name) for name in self._PARTS}
        if self.url is not None:
            conflicting = [env_name("model_db", n) for n, v in given.items() if v is not None]
            if conflicting:
                why = "conflicts with LUME_MODEL_DB__URL (set one form only)"
                return [(name, why) for name in conflicting]
            try:
                make_url(self.url)
            except ArgumentError:
                return [(env_name("model_db", "url"), f"is not a SQLAlchemy URL: {self.url!r}")]
            return []
        return _missing("model_db", list(self._PARTS), given)

    def sqlalchemy_url(self) -> str:
        """The connection URL, password included (never log it)."""
        if self.url is not None:
            return self.url
        assert self.password is not None and self.port is not None  # guaranteed by problems()
        url = URL.create(
            self.dialect_str,
            username=self.user,
            password=self.password.get_secret_value(),
            host=self.host,
            port=self.port,
            database=self.database,
        )
        return url.render_as_string(hide_password=False)


class ResultsDBSettings(_Group):
    """The results store: MongoDB from host/port/username/password, or a URL (``mongodb://``/``sqlite:///``)."""

    url: str | None = None
    host: str | None = None
    port: Port | None = Field(default=None, ge=1, le=65535)
    username: str | None = None
    password: SecretStr | None = None
    database: str | None = None
    authmechanism: str = "DEFAULT"
    options: dict[str, Any] = {}

    _PARTS = ("host", "port", "username", "password")
    _SCHEMES = ("mongodb://", "mongodb+srv://", "sqlite:///")

    def problems(self) -> list[Problem]:
        """Every variable of this group that is missing, conflicting or malformed."""
        given = {name: getattr(self, name) for name in self._PARTS}
        if self.url is not None:
            conflicting = [env_name("results_db", n) for n, v in given.items() if v is not None]
            if conflicting:
                why = "conflicts with LUME_RESULTS_DB__URL (set one form only)"
                return [(name, why) for name in conflicting]
            if not self.url.startswith(self._SCHEMES):
                return [(env_name("results_db", "url"), f"must start with one of {', '.join(self._SCHEMES)}")]
            return []
        problems = _missing("results_db", ["host", "port"], given)
        # Credentials are optional (a MongoDB without auth) but only as a pair.
        if (self.username is None) != (self.password is None):
            absent = "username" if self.username is None else "password"
            problems.append((env_name("results_db", absent), "is required when the other credential is set"))
        return problems

    def mongodb_url(self) -> str:
        """The connection URL, credentials included (never log it)."""
        if self.url is not None:
            return self.url
        credentials = ""
        if self.username is not None and self.password is not None:
            credentials = f"{quote_plus(self.username)}:{quote_plus(self.password.get_secret_value())}@"
        query = {str(key): _query_value(value) for key, value in self.options.items()}
        if self.authmechanism != "DEFAULT":
            query["authMechanism"] = self.authmechanism
        suffix = f"?{urlencode(query)}" if query else ""
        return f"mongodb://{credentials}{self.host}:{self.port}/{suffix}"

    def database_name(self) -> str:
        """``__DATABASE``, else the database in the URL path, else ``lume``."""
        if self.database:
            return self.database
        if self.url is not None and self.url.startswith("mongodb"):
            path = self.url.split("://", 1)[1].split("?", 1)[0].partition("/")[2]
            if path:
                return path
        return DEFAULT_RESULTS_DATABASE


def _query_value(value: Any) -> str:
    # MongoDB URI options spell booleans in lower case.
    return str(value).lower() if isinstance(value, bool) else str(value)


class MountedFilesystemSettings(_Group):
    """The shared volume: ``mount_path`` (as users name it) appears at ``mount_alias`` in this process."""

    identifier: str = "mounted"
    mount_path: str | None = None
    mount_alias: str | None = None
    mount_type: Literal["Directory", "DirectoryOrCreate"] = "DirectoryOrCreate"

    def problems(self) -> list[Problem]:
        """Every variable of this group that is missing or malformed."""
        problems: list[Problem] = []
        if self.mount_path is None:
            problems.append((env_name("mounted_filesystem", "mount_path"), "is required"))
        for name in ("mount_path", "mount_alias"):
            value = getattr(self, name)
            if value is not None and not os.path.isabs(value):
                why = f"must be an absolute path, got {value!r}"
                problems.append((env_name("mounted_filesystem", name), why))
        if self.identifier in ("", "local"):
            problems.append(
                (env_name("mounted_filesystem", "identifier"), f"must not be {self.identifier!r} (reserved)")
            )
        return problems

    @property
    def root(self) -> Path:
        """The directory that holds the files in this process (the alias, else the mount path)."""
        assert self.mount_path is not None  # guaranteed by problems()
        return Path(self.mount_alias or self.mount_path)


class _EnvironSource(EnvSettingsSource):
    def _load_env_vars(self) -> Mapping[str, str | None]:
        return parse_env_vars(
            _environ(),
            self.case_sensitive,
            self.env_ignore_empty,
            self.env_parse_none_str,
        )


class LumeSettings(BaseSettings):
    """Everything ``configure_services()`` needs, read from ``LUME_*`` (``__`` nests)."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter=NESTED_DELIMITER,
        case_sensitive=False,
        extra="ignore",
        frozen=True,
    )

    home: Path = Field(default_factory=default_home)
    model_db: ModelDBSettings | None = None
    results_db: ResultsDBSettings | None = None
    mounted_filesystem: MountedFilesystemSettings | None = None

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Explicit arguments, then the environment; no dotenv or secrets directory (pods get env vars)."""
        return init_settings, _EnvironSource(settings_cls)

    def problems_of_home(self) -> list[Problem]:
        """``LUME_HOME`` must be absolute: worker processes do not share the caller's working directory."""
        if self.home.expanduser().is_absolute():
            return []
        return [(env_name("home"), f"must be an absolute path, got {str(self.home)!r}")]

    @property
    def data_dir(self) -> Path:
        """The embedded data directory (``LUME_HOME``, ``~`` expanded)."""
        return self.home.expanduser()

    @property
    def local_root(self) -> Path:
        """The root of the ``local`` filesystem."""
        return self.data_dir / "files"

    @property
    def model_db_url(self) -> str:
        """The model registry URL: the configured database, or the embedded SQLite file."""
        if self.model_db is not None:
            return self.model_db.sqlalchemy_url()
        return f"sqlite:///{self.data_dir / 'registry.sqlite'}"

    @property
    def results_db_url(self) -> str:
        """The results store URL: the configured MongoDB, or the embedded SQLite document store."""
        if self.results_db is not None:
            return self.results_db.mongodb_url()
        return f"sqlite:///{self.data_dir / 'results.sqlite'}"

    @property
    def results_db_database(self) -> str:
        """The results database (MongoDB database name; ignored by the embedded store)."""
        if self.results_db is not None:
            return self.results_db.database_name()
        return DEFAULT_RESULTS_DATABASE


def _describe(problems: list[Problem]) -> str:
    lines = [f"  {name}: {what}" for name, what in problems]
    return "the LUME service environment is not usable:\n" + "\n".join(lines)


def load_settings(environ: Mapping[str, str] | None = None) -> LumeSettings:
    """Read and check the service environment; raise one ConfigurationError naming every variable at fault.

    Parameters
    ----------
    environ
        The variables to read instead of ``os.environ`` (tests and the CLI pass their own).
    """
    token = _ENVIRON.set(environ)
    try:
        return _load_settings()
    finally:
        _ENVIRON.reset(token)


def _load_settings() -> LumeSettings:
    raw = _EnvironSource(LumeSettings)()
    # Each group is checked on its own so that one malformed group does not hide the faults of another.
    problems: list[Problem] = []
    checked: dict[str, Any] = {}
    for field in _GROUPS:
        if raw.get(field) is None:
            continue
        try:
            checked[field] = _GROUPS[field].model_validate(raw[field])
        except ValidationError as exc:
            problems.extend(_validation_problems(exc, prefix=(field,)))
            # Check what is left without the malformed values, so that missing ones are named too.
            malformed = {str(error["loc"][0]) for error in exc.errors() if error["loc"]}
            remainder = {k: v for k, v in dict(raw[field]).items() if k not in malformed}
            try:
                partial = _GROUPS[field].model_validate(remainder)
            except ValidationError:
                continue
            problems.extend(p for p in partial.problems() if p[0] not in {name for name, _ in problems})
            continue
        problems.extend(checked[field].problems())
    home = raw.get("home") or default_home()
    # Build from the checked values only: with an empty environment the sources add nothing unchecked.
    token = _ENVIRON.set({})
    try:
        settings = LumeSettings(home=home, **checked)
    except ValidationError as exc:
        problems.extend(_validation_problems(exc, prefix=()))
    else:
        problems = settings.problems_of_home() + problems
    finally:
        _ENVIRON.reset(token)
    if problems:
        raise ConfigurationError(_describe(problems), [name for name, _ in problems])
    return settings


def _validation_problems(exc: ValidationError, prefix: tuple[str, ...]) -> list[Problem]:
    return [(env_name(*prefix, *map(str, error["loc"])), error["msg"]) for error in exc.errors()]


_GROUPS: dict[str, type[ModelDBSettings | ResultsDBSettings | MountedFilesystemSettings]] = {
    "model_db": ModelDBSettings,
    "results_db": ResultsDBSettings,
    "mounted_filesystem": MountedFilesystemSettings,
}


__all__ = [
    "ConnectionSettings",
    "LumeSettings",
    "ModelDBSettings",
    "MountedFilesystemSettings",
    "ResultsDBSettings",
    "default_home",
    "env_name",
    "load_settings",
]
