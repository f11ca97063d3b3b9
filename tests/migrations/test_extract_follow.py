"""Validate following an extract while it is written (``extracted.FollowedExtract``): the batches are
those the finished files give, an entity can be asked for before extract reaches it, and a producer
that stops midway (failed, or gone without a word) makes the reader raise instead of waiting forever."""

from __future__ import annotations

import threading

import pyarrow as pa
import pytest

from crmbridge.migrations.extracted import ExtractPublisher, FollowedExtract, FollowStopped, iter_entity_tables


@pytest.fixture
def demo(tmp_path):
    """The demo project with row groups of 100 rows: customers from two CSV files and an Excel sheet
    (their columns differ), contracts header-only (an entity without rows)."""
    from crmbridge.config import load_project
    from crmbridge.migrations.demo_data import write_demo_data
    from crmbridge.templates.commands import init_project

    root = tmp_path / "p"
    init_project(root)
    write_demo_data(root, customers=700, erp=False)
    contracts = root / "data" / "contracts.csv"
    contracts.write_bytes(contracts.read_bytes().split(b"\n", 1)[0] + b"\n")
    cfg = root / "crmbridge.yml"
    text = cfg.read_text("utf-8")
    assert "chunk_rows: 50000" in text
    cfg.write_text(text.replace("chunk_rows: 50000", "chunk_rows: 100"), "utf-8")
    yield load_project(root)
    from crmbridge.state import dispose_all

    dispose_all()


def _extracting(project, delay: float = 0.0):
    """A new run and extract writing (publishing) it on a thread, started after ``delay`` seconds."""
    from crmbridge.migrations import runs as R
    from crmbridge.migrations.extract import run_extract
    from crmbridge.state import open_state

    run = R.create_run(open_state(project.state_url), project.runs_dir, "migrate")
    errors: list[BaseException] = []

    def produce():
        try:
            run_extract(project, run=run, full=True, allow_shrink=True, publish=True)
        except BaseException as exc:  # noqa: BLE001 - the test reports it
            errors.append(exc)

    thread = threading.Thread(target=produce)
    threading.Timer(delay, thread.start).start()
    started = threading.Event()
    threading.Timer(delay, started.set).start()

    def alive() -> bool:
        return not started.is_set() or thread.is_alive() or not thread.ident

    def finished() -> None:
        started.wait()
        thread.join()
        if errors:
            raise errors[0]

    return run, FollowedExtract(run.dir, finished, alive)


@pytest.mark.parametrize("batch_rows", [70, 100, 250, 1 << 20])
def test_followed_batches_are_the_extracted_files_batches(demo, batch_rows):
    run, followed = _extracting(demo, delay=0.3)  # asked for before extract has even begun
    # the last entity first: its sources are written last, after every other entity's
    entities = followed.entities()
    assert entities == ["customers", "contacts", "contracts"][:len(entities)] and "contracts" in entities
    got = {e: list(followed.tables(e, batch_rows)) for e in reversed(entities)}
    followed.finished()
    for e in entities:
        want = list(iter_entity_tables(run.dir, e, batch_rows))
        assert [len(t) for t in got[e]] == [len(t) for t in want], e
        for g, w in zip(got[e], want):
            assert g.schema == w.schema and g.equals(w), e
    assert len(got["contracts"]) == 1 and len(got["contracts"][0]) == 0  # no rows: one empty batch, columns kept
    assert sum(map(len, got["customers"])) > 700 and len({len(t) for t in got["customers"]}) > 1
    followed.release("customers")
    assert not list((run.dir / ".extract.flow").glob("*customers.arrows"))


def _published(tmp_path, rows: int):
    schema = pa.schema([("customer_no", pa.string()), ("_line", pa.int64())])
    pub = ExtractPublisher(tmp_path, [("customers", "sales")])
    stream = pub.stream("sales", schema)
    stream.write(pa.table({"customer_no": [f"C{i}" for i in range(rows)], "_line": list(range(rows))}, schema=schema))
    return pub, stream


def test_a_producer_that_fails_midway_stops_the_reader(tmp_path):
    pub, stream = _published(tmp_path, 25)
    batches = FollowedExtract(tmp_path, lambda: None, lambda: True).tables("customers", 10)
    assert [len(next(batches)) for _ in range(2)] == [10, 10]  # the last 5 rows wait for more
    threading.Timer(0.2, lambda: (stream.abandon(), pub.stop("extract failed: data/sales.csv: line 9"))).start()
    with pytest.raises(FollowStopped, match="extract failed: data/sales.csv: line 9"):
        next(batches)


def test_a_producer_gone_without_a_word_stops_the_reader(tmp_path):
    _, stream = _published(tmp_path, 5)
    alive = threading.Event()
    alive.set()
    batches = FollowedExtract(tmp_path, lambda: None, alive.is_set).tables("customers", 10)
    threading.Timer(0.2, alive.clear).start()  # killed: no end of stream, no marker
    with pytest.raises(FollowStopped, match="the extract process ended"):
        next(batches)
    stream.close()


def test_the_end_of_the_stream_gives_the_last_shorter_batch(tmp_path):
    _, stream = _published(tmp_path, 25)
    threading.Timer(0.2, stream.close).start()
    batches = list(FollowedExtract(tmp_path, lambda: None, lambda: True).tables("customers", 10))
    assert [len(b) for b in batches] == [10, 10, 5]
    assert pa.concat_tables(batches).column("_line").to_pylist() == list(range(25))
