"""The project file ``crmbridge.yml`` as strict pydantic models.

A project folder looks like a dbt project::

    crmbridge.yml          # this file
    data/                  # legacy exports (CSV, Excel) the sources point at
    definitions/customer.yml
    mappings/*.yml
    sync.yml  readiness.yml  kpis.yml
    runs/<run_id>/         # artifacts of each run
    .crmbridge/state.db    # state database (runs, ledger, watermarks), SQLite by default

Secrets are never written in the file: they are ``{env: NAME}`` references.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from crmbridge.errors import UsageError
from crmbridge.secretref import EnvRef, register

CONFIG_FILE = "crmbridge.yml"
DEFAULT_API_VERSION = "62.0"


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


# Query-string parameters that DBAPI drivers take as a password (psycopg, pymysql, pyodbc, oracledb ...).
_PASSWORD_PARAMS = frozenset({"password", "passwd", "pwd", "pass", "pw", "password2", "password3"})


def url_secrets(parsed) -> list[str]:
    """Every password a parsed SQLAlchemy URL carries: the userinfo part and ``?password=``-style keys."""
    found = [str(parsed.password)] if parsed.password else []
    for key, val in parsed.query.items():
        if key.lower() in _PASSWORD_PARAMS:
            found.extend(v for v in ((val,) if isinstance(val, str) else val) if v)
    return found


def resolve_url(value: "str | EnvRef", what: str) -> str:
    """Resolve a database URL (literal or env reference) and register its passwords as secrets."""
    url = value.resolve(what=what) if isinstance(value, EnvRef) else value
    try:
        from sqlalchemy.engine import make_url

        for pw in url_secrets(make_url(url)):
            register(pw)
    except Exception:
        pass
    return url


def _no_literal_password(url: "str | EnvRef") -> "str | EnvRef":
    if isinstance(url, str):
        from sqlalchemy.engine import make_url

        try:
            parsed = make_url(url)
        except Exception as exc:
            raise ValueError(f"not a valid SQLAlchemy URL ({type(exc).__name__})") from None
        if parsed.password:
            raise ValueError("the URL holds a password; write it as {env: NAME} and export NAME instead")
        keys = [k for k in parsed.query if k.lower() in _PASSWORD_PARAMS]
        if keys:
            raise ValueError(f"the URL holds a password in its query string (?{keys[0]}=...); write the whole "
                             "URL as {env: NAME} and export NAME instead")
    return url


# --------------------------------------------------------------------------- Salesforce targets


class SandboxTarget(Strict):
    """The embedded local org (default). Started in-process on loopback when a command needs it."""

    target: Literal["sandbox"] = "sandbox"
    db: str = ".crmbridge/sandbox.db"
    schema_files: list[str] = Field(default_factory=list, description="extra objects/fields (YAML)")
    username: str = "admin@sandbox.crmbridge"
    password: str = "sandbox"
    instance_url: str | None = Field(None, description="use an already running `crmbridge sandbox serve`")
    ca_bundle: str | None = None


class PasswordTarget(Strict):
    """Username + password + security token (SOAP/OAuth login against login, test or My Domain)."""

    target: Literal["password"]
    username: str
    password: EnvRef
    security_token: EnvRef | None = None
    domain: str = Field("login", description="login, test, or a My Domain such as acme.my")
    consumer_key: str | None = None
    consumer_secret: EnvRef | None = None


class TokenTarget(Strict):
    """Instance URL + access token, e.g. from `sf org display`."""

    target: Literal["token"]
    instance_url: str
    access_token: EnvRef


class JwtTarget(Strict):
    """OAuth 2.0 JWT bearer flow (connected app consumer key + private key file)."""

    target: Literal["jwt"]
    username: str
    consumer_key: str
    private_key_file: str
    domain: str = "login"


SalesforceTarget = Annotated[
    Union[SandboxTarget, PasswordTarget, TokenTarget, JwtTarget], Field(discriminator="target")
]


class SalesforceSettings(Strict):
    api_version: str = DEFAULT_API_VERSION
    timeout_seconds: float = 120.0
    max_retries: int = 6
    # Bulk API 2.0 jobs of one load step submitted before the first of them has finished. Salesforce
    # runs each job's internal batches in parallel already; more jobs in flight overlap one job's
    # upload and result download with another's processing. Lower it for an org whose triggers lock
    # shared parents (UNABLE_TO_LOCK_ROW); 10 matches simple-salesforce's own ceiling.
    bulk_jobs_in_flight: int = Field(3, ge=1, le=10)

    @field_validator("api_version")
    @classmethod
    def _version(cls, v: str) -> str:
        try:
            if float(v) < 40.0:
                raise ValueError
        except ValueError:
            raise ValueError("api_version must look like '62.0' (40.0 or newer)") from None
        return v


# --------------------------------------------------------------------------- sources (extract)


class Incremental(Strict):
    column: str = Field(..., description="watermark column, e.g. updated_at or a row version")


_FILTER_TESTS = ("equals", "not_equals", "in_", "not_in", "is_null", "matches")


class SourceFilter(Strict):
    """Keep a source row only when it passes: ``{column: 状态, not_in: [已删除], name: deleted rows}``.

    Exactly one test; values are compared as trimmed text. A row that fails is not dropped: it goes to
    the source's rejects file with the reason ``filtered: <name or condition>``.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    column: str
    equals: str | None = None
    not_equals: str | None = None
    in_: list[str] | None = Field(None, alias="in")
    not_in: list[str] | None = None
    is_null: bool | None = None
    matches: str | None = Field(None, description="regular expression searched in the trimmed value")
    name: str | None = None

    @field_validator("equals", "not_equals", mode="before")
    @classmethod
    def _text(cls, v):
        return v if v is None or isinstance(v, str) else str(v)

    @field_validator("in_", "not_in", mode="before")
    @classmethod
    def _texts(cls, v):
        return [x if isinstance(x, str) else str(x) for x in v] if isinstance(v, list) else v

    @model_validator(mode="after")
    def _one_test(self):
        given = [k for k in _FILTER_TESTS if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of equals, not_equals, in, not_in, is_null, matches")
        if self.matches is not None:
            import re

            try:
                re.compile(self.matches)
            except re.error as exc:
                raise ValueError(f"matches is not a valid regular expression: {exc}") from None
        return self

    def describe(self) -> str:
        return describe_filter(self)


def describe_filter(f) -> str:
    """A filter's label: its ``name``, or its condition (``status not in ['已删除']``). Shared by source
    filters and mapping filters, which have the same keys."""
    if f.name:
        return f.name
    for key, label in (("equals", "=="), ("not_equals", "!="), ("in_", "in"), ("not_in", "not in"),
                       ("matches", "matches")):
        v = getattr(f, key)
        if v is not None:
            return f"{f.column} {label} {v!r}" if not isinstance(v, list) else f"{f.column} {label} {v}"
    return f"{f.column} is {'null' if f.is_null else 'not null'}"


class SourceBase(Strict):
    name: str = Field(..., pattern=r"^[A-Za-z][A-Za-z0-9_\-]*$")
    entity: str = Field(..., pattern=r"^[A-Za-z][A-Za-z0-9_]*$", description="e.g. customers, contacts")
    department: str = Field("unassigned", description="whose view of the data this is; with "
                            "department_column, the department of rows whose column is empty")
    department_column: str | None = Field(None, description="column holding each row's department (e.g. 所属部门)")
    department_map: dict[str, str] = Field(default_factory=dict,
                                           description="department_column value -> department (e.g. 销售部: sales)")
    filters: list[SourceFilter] = Field(default_factory=list, description="rows to keep (all must pass)")
    key: list[str] = Field(default_factory=list, description="column(s) identifying a row in the source")
    columns: dict[str, str] = Field(default_factory=dict, description="rename: legacy header -> column")

    @field_validator("key", mode="before")
    @classmethod
    def _key_list(cls, v):
        return [v] if isinstance(v, str) else v

    @model_validator(mode="after")
    def _department_map_needs_column(self):
        if self.department_map and not self.department_column:
            raise ValueError("department_map needs department_column (the column whose values it maps)")
        return self

    @property
    def department_fallback(self) -> str | None:
        """The department of rows whose department column is empty (None: such rows are rejected)."""
        return self.department if "department" in self.model_fields_set else None


class CsvSource(SourceBase):
    type: Literal["csv"]
    path: str
    encoding: str = "auto"
    delimiter: str = "auto"
    quotechar: str = '"'
    header_row: int = Field(1, ge=1)


class ExcelSource(SourceBase):
    type: Literal["excel"]
    path: str
    sheet: str | int = 0
    header_row: int = Field(1, ge=1)
    date_columns: list[str] = Field(default_factory=list, description="columns holding Excel serial dates")


class SqlSource(SourceBase):
    type: Literal["sql"]
    url: str | EnvRef
    table: str | None = None
    query: str | None = None
    incremental: Incremental | None = None

    _check_url = field_validator("url")(lambda cls, v: _no_literal_password(v))

    @model_validator(mode="after")
    def _table_or_query(self):
        if bool(self.table) == bool(self.query):
            raise ValueError("give exactly one of 'table' or 'query'")
        return self


Source = Annotated[Union[CsvSource, ExcelSource, SqlSource], Field(discriminator="type")]


# --------------------------------------------------------------------------- project


class StateSettings(Strict):
    url: str | EnvRef | None = Field(None, description="SQLAlchemy URL; default sqlite under .crmbridge/")

    _check_url = field_validator("url")(lambda cls, v: v if v is None else _no_literal_password(v))


class ErpSettings(Strict):
    url: str | EnvRef

    _check_url = field_validator("url")(lambda cls, v: _no_literal_password(v))


class ValidateSettings(Strict):
    # 0 by default: one worker saves little wall time on 2 cores and its pages count twice in summed RSS
    # (1.32 GB at 5M rows, issue 14's target is 1 GB); see docs/performance.md
    workers: int | None = Field(0, ge=0, description="worker processes for validate's batches: 0 (default) runs "
                                "in one process; null: one per core beside the stage's (at most 2) for entities "
                                "of parallel_min_rows rows")
    parallel_min_rows: int = Field(200_000, ge=0, description="with workers null, smaller entities are validated "
                                   "in one process")


class ProjectConfig(Strict):
    name: str = "crmbridge-project"
    salesforce: SalesforceTarget = Field(default_factory=SandboxTarget)
    salesforce_settings: SalesforceSettings = Field(default_factory=SalesforceSettings)
    state: StateSettings = Field(default_factory=StateSettings)
    sources: list[Source] = Field(default_factory=list)
    erp: ErpSettings | None = None
    chunk_rows: int = Field(50_000, ge=100, description="rows per streamed chunk")
    validation: ValidateSettings = Field(default_factory=ValidateSettings, alias="validate")  # BaseModel has .validate
    definitions_dir: str = "definitions"
    mappings_dir: str = "mappings"
    runs_dir: str = "runs"
    sync_file: str = "sync.yml"
    readiness_file: str = "readiness.yml"
    kpis_file: str = "kpis.yml"
    cutover_window_hours: float = Field(48.0, gt=0)

    @model_validator(mode="after")
    def _unique_sources(self):
        seen = set()
        for s in self.sources:
            if s.name in seen:
                raise ValueError(f"source name '{s.name}' is used twice")
            seen.add(s.name)
        return self


@dataclass(frozen=True)
class Project:
    """A loaded project: its folder and its validated config. Pass narrow parts onward."""

    root: Path
    config: ProjectConfig

    @property
    def config_path(self) -> Path:
        return self.root / CONFIG_FILE

    def path(self, rel: str | Path) -> Path:
        p = Path(rel)
        return p if p.is_absolute() else self.root / p

    @property
    def runs_dir(self) -> Path:
        return self.path(self.config.runs_dir)

    @property
    def state_url(self) -> str:
        url = self.config.state.url
        if url is None:
            from crmbridge.state import private_dir

            private_dir(self.root / ".crmbridge")
            return f"sqlite:///{(self.root / '.crmbridge' / 'state.db').resolve()}"
        return self.db_url(url, "state.url")

    def db_url(self, value: "str | EnvRef", what: str) -> str:
        """Resolve a database URL; a relative SQLite path is taken relative to the project folder."""
        url = resolve_url(value, what)
        from sqlalchemy.engine import make_url

        u = make_url(url)
        if u.drivername.startswith("sqlite") and u.database and u.database != ":memory:" \
                and not Path(u.database).is_absolute():
            url = u.set(database=str((self.root / u.database).resolve())).render_as_string(hide_password=False)
        return url

    def sources_for(self, entity: str | None = None) -> list:
        return [s for s in self.config.sources if entity is None or s.entity == entity]

    @property
    def entities(self) -> list[str]:
        out: list[str] = []
        for s in self.config.sources:
            if s.entity not in out:
                out.append(s.entity)
        return out


def find_project_root(start: str | Path = ".") -> Path | None:
    """The nearest folder at or above ``start`` that holds ``crmbridge.yml`` (as git and dbt look)."""
    here = Path(start).resolve()
    for d in (here, *here.parents):
        if (d / CONFIG_FILE).is_file():
            return d
    return None


def load_project(root: str | Path = ".", *, search_parents: bool = False) -> Project:
    """Load ``crmbridge.yml`` from ``root`` (or, with ``search_parents``, the nearest folder above it
    that has one); a usage error if it is missing or invalid."""
    from crmbridge.yamlconf import load_model

    r = Path(root).resolve()
    if search_parents:
        r = find_project_root(r) or r
    cfg = r / CONFIG_FILE
    if not cfg.exists():
        raise UsageError(
            f"no {CONFIG_FILE} in {r}" + (" or any folder above it" if search_parents else ""),
            hint="run `crmbridge init DIR` to create a project (`crmbridge init DIR --demo` for one with "
                 "sample data), or pass --project DIR",
        )
    return Project(root=r, config=load_model(cfg, ProjectConfig))
