"""Writing one extracted source: kept rows to Parquet row groups, rejects to a CSV file.

Used by ``crmbridge.migrations.extract``; ``_write_events`` feeds per-record readers (Excel, SQL),
``_write_batches`` feeds Arrow batch readers (CSV), both through a ``SourceWriter``.
"""

from __future__ import annotations

from pathlib import Path

from crmbridge.migrations.extracted import LINEAGE


def _write_events(events, rules, writer: "SourceWriter", name: str, chunk: int, on_progress) -> int:
    """Per-record events (Excel, SQL) into the writer, ``chunk`` kept rows at a time; returns rows read."""
    from crmbridge.migrations import source_rows

    rows_read = 0
    lines: list[int] = []
    rows: list[list] = []
    depts: list[str] | None = [] if rules is not None else None
    for line, cells, bad in events:  # the hot loop: kept lean on purpose
        rows_read += 1
        if bad is None:
            if rules is not None:
                dept, why = rules.check(cells)
                if why is not None:
                    writer.reject(line, why, source_rows.raw_cells(cells))
                    continue
                depts.append(dept)
            lines.append(line)
            rows.append(cells)
            if len(rows) >= chunk:
                writer.write(lines, rows, depts)
                lines, rows = [], []
                depts = [] if rules is not None else None
                if on_progress:
                    on_progress(name, rows_read)
        else:
            writer.reject(line, *bad)
    writer.write(lines, rows, depts)
    return rows_read


def _write_batches(batches, rules, writer: "SourceWriter", name: str, chunk: int, on_progress) -> int:
    """Arrow batches (CSV) into the writer, the row rules applied column-wise; returns rows read.

    Rejects (the reader's and the rules') are written in line order, as the per-record path does."""
    from crmbridge import arrowvals as av
    from crmbridge.migrations import source_rows

    groups = _RowGroups(writer, chunk)
    rows_read = 0
    for batch in batches:
        rows_read += batch.rows + len(batch.rejects)
        rejects = batch.rejects
        cols, lines, depts = batch.columns, batch.lines, None
        if rules is not None and batch.rows:
            keep, depts, refused = rules.check_columns(cols)
            if refused:
                at = av.ints([i for i, _ in refused])
                cells = [c.take(at).to_pylist() for c in cols]
                refused_lines = lines.take(at).to_pylist()
                rejects = sorted(rejects + [(refused_lines[j], why, source_rows.raw_cells([c[j] for c in cells]))
                                            for j, (_, why) in enumerate(refused)], key=lambda r: r[0])
                mask = av.bools(keep)
                cols, lines = [c.filter(mask) for c in cols], lines.filter(mask)
        for line, reason, raw in rejects:
            writer.reject(line, reason, raw)
        groups.add(lines, cols, depts)
        if on_progress:
            on_progress(name, rows_read)
    groups.flush()
    return rows_read


class _RowGroups:
    """Kept rows regrouped into Parquet row groups of exactly ``chunk`` rows (the last one shorter),
    as the per-record path writes them, whatever the size of the reader's batches."""

    def __init__(self, writer: "SourceWriter", chunk: int):
        self.writer, self.chunk = writer, chunk
        self.parts: list[tuple] = []
        self.rows = 0

    def add(self, lines, cols: list, depts) -> None:
        if len(lines):
            self.parts.append((lines, cols, depts))
            self.rows += len(lines)
        if self.rows >= self.chunk:
            self.flush(full_only=True)

    def flush(self, full_only: bool = False) -> None:
        import pyarrow as pa

        if not self.parts:
            return
        lines = pa.concat_arrays([p[0] for p in self.parts])
        cols = [pa.concat_arrays(list(c)) for c in zip(*(p[1] for p in self.parts))]
        depts = None if self.parts[0][2] is None else pa.concat_arrays([p[2] for p in self.parts])
        at, n = 0, len(lines)
        while n - at >= self.chunk or (not full_only and at < n):
            k = min(self.chunk, n - at)
            self.writer.write_arrow(lines.slice(at, k), [c.slice(at, k) for c in cols],
                                    None if depts is None else depts.slice(at, k))
            at += k
        rest = n - at
        self.parts = [(lines.slice(at), [c.slice(at) for c in cols],
                       None if depts is None else depts.slice(at))] if rest else []
        self.rows = rest


class SourceWriter:
    """Writes one source's kept rows to Parquet chunk by chunk and its rejects to a CSV file."""

    def __init__(self, src, columns: list[str], parquet: Path, rejects: Path, profile=None, publisher=None):
        """``publisher``: an ``extracted.ExtractPublisher`` that gets each row group too (``migrate``)."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        self.pa = pa
        self.columns = list(columns)
        self.profile = profile  # an EntityProfile fed with each row group, or None
        if profile is not None:
            profile.start_file(self.columns)
        self.name, self.department = src.name, src.department
        self.width = len(columns)
        self.key_idx = [columns.index(k) for k in src.key]
        self.schema = pa.schema([pa.field(c, pa.string()) for c in columns]
                                + [pa.field(c, pa.int64() if c == "_line" else pa.string()) for c in LINEAGE])
        parquet.parent.mkdir(parents=True, exist_ok=True)
        self.pq, self.parquet = pq, parquet
        self.writer = None  # opened at the first row group, which chooses the dictionary columns
        self.rejects_path = rejects
        self._rejects = None
        self.rows_kept = self.rows_rejected = 0
        self.reasons: dict[str, int] = {}
        self.departments: dict[str, int] = {}  # rows kept per department
        self.stream = publisher.stream(src.name, self.schema) if publisher is not None else None

    def reject(self, line: int, reason: str, raw: str) -> None:
        if self._rejects is None:
            from crmbridge.csvout import Writer  # a human-facing file: formula injection neutralised

            self._rejects = Writer(self.rejects_path, ["_line", "_reason", "_raw"])
        self._rejects.writerow([line, reason, raw])
        short = reason.split(" (", 1)[0]
        self.reasons[short] = self.reasons.get(short, 0) + 1
        self.rows_rejected += 1

    def _source_keys(self, cols: list, row_ids):
        pa = self.pa
        if not self.key_idx:
            return row_ids
        if len(self.key_idx) == 1:
            return cols[self.key_idx[0]]
        import pyarrow.compute as pc

        from crmbridge import arrowvals as av

        parts = [cols[k] for k in self.key_idx]
        joined = pc.binary_join_element_wise(*parts, av.string("|"), null_handling="replace", null_replacement="")
        none = parts[0].is_null()
        for p in parts[1:]:
            none = pc.and_(none, p.is_null())
        return pc.if_else(none, av.string(None), joined)

    def write(self, lines: list[int], rows: list[list], depts: list[str] | None = None) -> None:
        """Write one chunk of kept rows (``lines`` their line numbers) as a Parquet row group;
        ``depts`` is each row's department (None: the source's department for all)."""
        pa = self.pa
        if not rows:
            return
        self.write_arrow(pa.array(lines, pa.int64()), [pa.array(c, pa.string()) for c in zip(*rows)],
                         None if depts is None else pa.array(depts, pa.string()))

    def write_arrow(self, lines, columns: list, depts=None) -> None:
        """Write kept rows given as Arrow string columns (``""`` or null for empty) and their int64
        ``lines`` as a Parquet row group; ``depts`` as in ``write``."""
        import pyarrow.compute as pc

        from crmbridge import arrowvals as av

        pa, n = self.pa, len(lines)
        if not n:
            return
        if depts is None:
            dept_arr = pa.repeat(av.string(self.department), n)
            self.departments[self.department] = self.departments.get(self.department, 0) + n
        else:
            dept_arr = depts
            vc = pc.value_counts(depts)
            for d, c in zip(vc.field("values").to_pylist(), vc.field("counts").to_pylist()):
                self.departments[d] = self.departments.get(d, 0) + c
        # Connectors may hand over "" for an empty cell: it becomes null here, vectorised.
        cols = [_empty_to_null(c) for c in columns]
        if self.profile is not None:
            self.profile.add(self.columns, cols, n)
        row_ids = pc.binary_join_element_wise(av.string(f"{self.name}:"), pc.cast(lines, pa.string()), av.string(""))
        keys = self._source_keys(cols, row_ids)
        cols += [row_ids, pa.repeat(av.string(self.name), n), dept_arr, lines, keys]
        table = pa.Table.from_arrays(cols, schema=self.schema)
        if self.writer is None:
            self._open(table)
        self.writer.write_table(table)
        if self.stream is not None:
            self.stream.write(table)
        self.rows_kept += n

    def _open(self, first=None) -> None:
        """Dictionary encoding only for the columns whose first row group repeats values: on a column
        of (nearly) unique values it costs 40% of the write and the writer falls back to plain anyway."""
        import pyarrow.compute as pc

        dictionary = ["_source", "_department"]
        if first is not None:
            n = first.num_rows
            dictionary += [c for c in first.column_names[:self.width]
                           if pc.count_distinct(first.column(c)).as_py() <= n // 2]
        # Min/max statistics only for ``_line``: on the string columns they cost a third of the write
        # (0.3 CPU-s per million rows) and no reader of these files filters on them.
        self.writer = self.pq.ParquetWriter(self.parquet, self.schema, use_dictionary=dictionary,
                                            write_statistics=["_line"])

    def close(self) -> None:
        if self.writer is None:
            self._open()
        self.writer.close()
        if self._rejects:
            self._rejects.close()
        if self.stream is not None:
            self.stream.close()

    def abort(self) -> None:
        try:
            if self.writer is not None:
                self.writer.close()
        finally:
            if self._rejects:
                self._rejects.close()
            if self.stream is not None:
                self.stream.abandon()


def _empty_to_null(arr):
    import pyarrow.compute as pc

    from crmbridge import arrowvals as av

    empty = pc.equal(arr, av.string(""))
    if not pc.any(empty).as_py():
        return arr
    return pc.if_else(empty, av.string(None), arr)
