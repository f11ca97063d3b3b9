"""SQLite storage of the sandbox org: one table per object, named after it, one column per field.

The layout is a contract with ``soql.py`` (see ``schema.py``). Besides the object tables the database
keeps ``_sandbox_meta`` (org id, the schema documents so a reopened db knows its custom objects),
``_sandbox_counters`` (Id and auto-number counters, the last SystemModstamp), ``_sandbox_passwords``,
``_sandbox_sessions``, ``_sandbox_apps`` (connected apps for OAuth) and the Bulk job tables.
Several processes may open the same file at once: WAL journal, a busy timeout, and every write in a
``BEGIN IMMEDIATE`` transaction so the checks a write makes still hold when it commits.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import secrets
import sqlite3
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import yaml

from crmbridge.sandbox import ids
from crmbridge.sandbox.schema import DEFAULT_SCHEMA, ObjectDef, Schema
from crmbridge.sandbox.values import now_stamp

DEFAULT_USERNAME = "admin@sandbox.crmbridge"
DEFAULT_PASSWORD = "sandbox"
BUSY_TIMEOUT_MS = 30_000
_LOCKS: dict[str, threading.RLock] = {}
_LOCKS_GUARD = threading.Lock()

_SYSTEM_DDL = """
CREATE TABLE IF NOT EXISTS _sandbox_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS _sandbox_counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS _sandbox_passwords (username TEXT PRIMARY KEY COLLATE NOCASE, salt TEXT NOT NULL,
    hash TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS _sandbox_sessions (token TEXT PRIMARY KEY, kind TEXT NOT NULL, user_id TEXT NOT NULL,
    client_id TEXT, issued_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS _sandbox_apps (client_id TEXT PRIMARY KEY, client_secret TEXT, certificate TEXT);
"""


def hash_password(password: str, salt: str) -> str:
    return hashlib.pbkdf2_hmac("sha256", password.encode(), salt.encode(), 20_000).hex()


class Store:
    """The org's database: schema, per-thread connections and serialized write transactions."""

    def __init__(self, db_path: str | Path, schema_files: tuple | list = (), *, username: str = DEFAULT_USERNAME,
                 password: str = DEFAULT_PASSWORD):
        self.db_path = Path(db_path).resolve()
        self.db_path.parent.mkdir(parents=True, exist_ok=True)
        for suffix in ("", "-wal", "-shm"):
            _private_file(Path(f"{self.db_path}{suffix}"), create=not suffix)
        self._local = threading.local()
        with _LOCKS_GUARD:
            self._lock = _LOCKS.setdefault(str(self.db_path), threading.RLock())
        conn = self.conn()
        conn.execute("PRAGMA journal_mode=WAL")
        with self.write() as c:
            for statement in _SYSTEM_DDL.split(";"):
                if statement.strip():
                    c.execute(statement)
            self.schema = self._load_schema(c, [Path(p) for p in schema_files])
            self._ensure_tables(c)
            self.org_id = self._meta(c, "org_id") or self._set_meta(c, "org_id", _org_id())
            # Tokens are stored hashed (auth.token_hash, 64 hex digits); rows from an older db held them in
            # plain text and are dropped, so their holders log in again.
            c.execute("DELETE FROM _sandbox_sessions WHERE length(token) != 64")
            self._seed(c, username, password)
        self.username = username
        self.admin_id = self.user_id(username)

    # ------------------------------------------------------------------ connections and transactions
    def conn(self) -> sqlite3.Connection:
        """This thread's connection (autocommit mode; writes go through ``write()``)."""
        c = getattr(self._local, "conn", None)
        if c is None:
            c = sqlite3.connect(self.db_path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None,
                                check_same_thread=False)
            c.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
            c.execute("PRAGMA synchronous=NORMAL")
            self._local.conn = c
        return c

    @contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """A write transaction, exclusive among threads and (via SQLite) among processes."""
        c = self.conn()
        with self._lock:
            if c.in_transaction:  # nested (a composite allOrNone request around its subrequests): a savepoint
                self._depth = getattr(self, "_depth", 0) + 1
                name = f"sp{self._depth}"
                c.execute(f"SAVEPOINT {name}")
                try:
                    yield c
                except BaseException:
                    c.execute(f"ROLLBACK TO {name}")
                    c.execute(f"RELEASE {name}")
                    raise
                finally:
                    self._depth -= 1
                c.execute(f"RELEASE {name}")
                return
            c.execute("BEGIN IMMEDIATE")
            try:
                yield c
            except BaseException:
                c.execute("ROLLBACK")
                raise
            c.execute("COMMIT")

    def close(self) -> None:
        c = getattr(self._local, "conn", None)
        if c is not None:
            c.close()
            self._local.conn = None

    # ------------------------------------------------------------------ metadata and counters
    @staticmethod
    def _meta(c: sqlite3.Connection, key: str) -> str | None:
        row = c.execute("SELECT value FROM _sandbox_meta WHERE key=?", (key,)).fetchone()
        return row[0] if row else None

    @staticmethod
    def _set_meta(c: sqlite3.Connection, key: str, value: str) -> str:
        c.execute("INSERT OR REPLACE INTO _sandbox_meta(key, value) VALUES (?, ?)", (key, value))
        return value

    @staticmethod
    def bump(c: sqlite3.Connection, name: str, by: int = 1) -> int:
        """Add ``by`` to counter ``name`` and return the first of the reserved values (inside a write)."""
        row = c.execute("SELECT value FROM _sandbox_counters WHERE name=?", (name,)).fetchone()
        start = (row[0] if row else 0) + 1
        c.execute("INSERT OR REPLACE INTO _sandbox_counters(name, value) VALUES (?, ?)", (name, start + by - 1))
        return start

    def new_ids(self, c: sqlite3.Connection, obj: ObjectDef, n: int) -> list[str]:
        start = self.bump(c, f"id:{obj.key_prefix}", n)
        return [ids.make_id(obj.key_prefix, start + i) for i in range(n)]

    def stamp(self, c: sqlite3.Connection) -> str:
        """A SystemModstamp strictly later than every earlier one (watermark syncs rely on it)."""
        now_ms = int(dt.datetime.now(dt.timezone.utc).timestamp() * 1000)
        row = c.execute("SELECT value FROM _sandbox_counters WHERE name='modstamp'").fetchone()
        ms = max(now_ms, (row[0] if row else 0) + 1)
        c.execute("INSERT OR REPLACE INTO _sandbox_counters(name, value) VALUES ('modstamp', ?)", (ms,))
        return now_stamp(dt.datetime.fromtimestamp(ms / 1000, dt.timezone.utc))

    # ------------------------------------------------------------------ schema and tables
    def _load_schema(self, c: sqlite3.Connection, files: list[Path]) -> Schema:
        docs: list[dict] = json.loads(self._meta(c, "schema_docs") or "[]")
        for path in files:
            with open(path, encoding="utf-8") as fh:
                doc = yaml.safe_load(fh) or {}
            if doc not in docs:
                docs.append(doc)
        schema = Schema()
        with open(DEFAULT_SCHEMA, encoding="utf-8") as fh:
            schema.extend(yaml.safe_load(fh) or {}, source=str(DEFAULT_SCHEMA))
        for doc in docs:
            schema.extend(doc, source="project schema")
        self._set_meta(c, "schema_docs", json.dumps(docs))
        # When the schema last changed, for describe's Last-Modified / ETag and If-Modified-Since answers.
        digest = hashlib.sha256((DEFAULT_SCHEMA.read_text(encoding="utf-8") + json.dumps(docs, sort_keys=True))
                                .encode("utf-8")).hexdigest()[:16]
        if self._meta(c, "schema_hash") != digest:
            self._set_meta(c, "schema_hash", digest)
            self._set_meta(c, "schema_modified", str(int(dt.datetime.now(dt.timezone.utc).timestamp())))
        self.schema_etag = f'"{digest[:8]}"'
        self.schema_modified = int(self._meta(c, "schema_modified"))
        return schema

    def _ensure_tables(self, c: sqlite3.Connection) -> None:
        for obj in self.schema.objects.values():
            existing = {r[1] for r in c.execute(f'PRAGMA table_info("{obj.name}")')}
            if not existing:
                cols = ", ".join(f'"{f.name}" {f.sql_type}' + (" PRIMARY KEY" if f.name == "Id" else "")
                                 for f in obj.fields.values())
                c.execute(f'CREATE TABLE "{obj.name}" ({cols})')
            else:
                for f in obj.fields.values():
                    if f.name not in existing:
                        c.execute(f'ALTER TABLE "{obj.name}" ADD COLUMN "{f.name}" {f.sql_type}')
            for f in obj.fields.values():
                idx = f'"ix_{obj.name}_{f.name}"'
                if f.unique:
                    # Deleted rows sit in the recycle bin and no longer hold their unique values.
                    c.execute(f'CREATE UNIQUE INDEX IF NOT EXISTS {idx} ON "{obj.name}"("{f.name}" COLLATE NOCASE) '
                              f'WHERE "IsDeleted" = 0')
                elif f.external_id or f.type == "reference" or f.name in ("SystemModstamp", "LastModifiedDate"):
                    coll = " COLLATE NOCASE" if f.external_id else ""
                    c.execute(f'CREATE INDEX IF NOT EXISTS {idx} ON "{obj.name}"("{f.name}"{coll})')

    # ------------------------------------------------------------------ users and seed data
    def _seed(self, c: sqlite3.Connection, username: str, password: str) -> None:
        if self.user_id(username, c) is None:
            first = not c.execute('SELECT 1 FROM "User" LIMIT 1').fetchone()
            self._insert_user(c, username, "Admin", "Sandbox", "admin", None)
            self._creator = c.execute('SELECT Id FROM "User" ORDER BY Id LIMIT 1').fetchone()[0]
            if first:
                for n in range(1, 6):
                    self._insert_user(c, f"rep{n}@sandbox.crmbridge", f"Rep{n}", "Sales", f"rep{n}", f"R{n:03d}")
                    self.set_password(c, f"rep{n}@sandbox.crmbridge", password)
                for dev, label in (("Customer", "Customer"), ("Partner", "Partner")):
                    self._insert_raw(c, self.schema.get("RecordType"), {
                        "Name": label, "DeveloperName": dev, "SobjectType": "Account", "IsActive": 1})
        self.set_password(c, username, password)
        org = self.schema.get("Organization")
        if org is not None and not c.execute('SELECT 1 FROM "Organization" LIMIT 1').fetchone():
            stamp = self.stamp(c)
            admin = self.user_id(username, c)
            row = {"Id": self.org_id, "IsDeleted": 0, "CreatedDate": stamp, "LastModifiedDate": stamp,
                   "SystemModstamp": stamp, "CreatedById": admin, "LastModifiedById": admin,
                   "Name": "crmbridge sandbox", "Country": "CN", "PrimaryContact": "Sandbox Admin",
                   "DefaultLocaleSidKey": "en_US", "LanguageLocaleKey": "en_US", "TimeZoneSidKey": "Asia/Shanghai",
                   "FiscalYearStartMonth": 1, "OrganizationType": "Enterprise Edition", "InstanceName": "SBX1",
                   "IsSandbox": 1, "IsReadOnly": 0, "ReceivesInfoEmails": 0, "ReceivesAdminInfoEmails": 0,
                   "UsesStartDateAsFiscalYearName": 0, "DefaultAccountAccess": "Edit",
                   "DefaultContactAccess": "ControlledByParent", "DefaultOpportunityAccess": "Edit",
                   "DefaultLeadAccess": "ReadEditTransfer", "DefaultCaseAccess": "ReadEditTransfer",
                   "DefaultCalendarAccess": "HideDetailsInsert", "DefaultPricebookAccess": "ReadSelect",
                   "DefaultCampaignAccess": "All", "UiSkin": "Theme4d", "SignupCountryIsoCode": "CN",
                   "NumKnowledgeService": 0, "MonthlyPageViewsUsed": 0, "MonthlyPageViewsEntitlement": 0}
            row = {k: v for k, v in row.items() if k in org.fields}
            c.execute(f'INSERT INTO "Organization" ({", ".join(chr(34) + k + chr(34) for k in row)}) '
                      f'VALUES ({", ".join("?" * len(row))})', list(row.values()))

    def _insert_user(self, c, username, last, first, alias, employee_no) -> None:
        self._insert_raw(c, self.schema.get("User"), {
            "Username": username, "LastName": last, "FirstName": first, "Name": f"{first} {last}",
            "Email": username if "@" in username else f"{username}@sandbox.crmbridge", "Alias": alias[:8],
            "IsActive": 1, "EmployeeNumber": employee_no, "Department": "Sales" if employee_no else None})

    def _insert_raw(self, c, obj: ObjectDef, values: dict[str, Any]) -> str:
        rid = self.new_ids(c, obj, 1)[0]
        stamp = self.stamp(c)
        creator = getattr(self, "_creator", None) or rid
        row = {"Id": rid, "IsDeleted": 0, "CreatedDate": stamp, "LastModifiedDate": stamp, "SystemModstamp": stamp,
               "CreatedById": creator, "LastModifiedById": creator, **values}
        if "OwnerId" in obj.fields:
            row["OwnerId"] = creator
        cols = ", ".join(f'"{k}"' for k in row)
        c.execute(f'INSERT INTO "{obj.name}" ({cols}) VALUES ({", ".join("?" * len(row))})', list(row.values()))
        return rid

    def set_password(self, c: sqlite3.Connection, username: str, password: str) -> None:
        salt = secrets.token_hex(8)
        c.execute("INSERT OR REPLACE INTO _sandbox_passwords(username, salt, hash) VALUES (?, ?, ?)",
                  (username, salt, hash_password(password, salt)))

    def check_password(self, username: str, password: str) -> str | None:
        """The user's Id when ``password`` is right for an active user, else None."""
        row = self.conn().execute("SELECT salt, hash FROM _sandbox_passwords WHERE username=?", (username,)).fetchone()
        if not row or not secrets.compare_digest(row[1], hash_password(password, row[0])):
            return None
        return self.user_id(username)

    def user_id(self, username: str, c: sqlite3.Connection | None = None) -> str | None:
        row = (c or self.conn()).execute('SELECT Id FROM "User" WHERE Username = ? COLLATE NOCASE AND IsActive = 1 '
                                         'AND IsDeleted = 0', (username,)).fetchone()
        return row[0] if row else None


def _private_file(path: Path, create: bool = True) -> None:
    """Create the db file readable by its owner only (0600): it holds customer data and password hashes.

    SQLite gives its -wal and -shm files the same mode as the db. An existing file that others can read
    is tightened when it is ours.
    """
    if not create and not path.exists():
        return
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        st = os.fstat(fd)
        if st.st_mode & 0o077 and st.st_uid == os.getuid():
            os.fchmod(fd, 0o600)
    finally:
        os.close(fd)


def _org_id() -> str:
    id15 = "00D" + ids.INSTANCE + "0" + "".join(secrets.choice(ids.BASE62) for _ in range(9))
    return id15 + ids.checksum(id15)
