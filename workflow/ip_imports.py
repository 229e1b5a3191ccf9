"""IP地址备案的批量导入与导出 (SPEC §8, §11): an IP reporting unit uploads the three sheets of the template; the
worker checks every row against the rules of `workflow/ip.py` — and the rows of the file against each other —
and imports nothing if one is wrong, else every row at once. The same job machinery as the filings import
(`workflow/imports.py`: queue, lease, progress, the marked file).

Checking a row is the workflow's own rule functions, never a copy of them; what would cost a query per row is
done once instead: the unit's source blocks are read once (containment is a bisection), the unit's
allocations are merged with the file's in one ordered pass (overlap), and the code-table half of each row's
user unit is checked once per distinct combination of codes. Wherever the fast path sees a problem, the
workflow's function for it is called to say so, with its result code and message.

Checking only reads, so it holds no write lock. The write is one short transaction of multi-row inserts; it
goes ahead only if no change that could invalidate the checks was recorded in the audit log since they began
(this unit's, or a block's anywhere, or another import) — otherwise the file is checked again (at most
ATTEMPTS times). The audit events of the new records follow in short transactions, as in the filings import.
"""

from __future__ import annotations

import bisect
import dataclasses
from collections.abc import Iterable, Iterator
from datetime import date, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import IO, Any

from sqlalchemy import func, or_, select
from sqlalchemy.exc import IntegrityError, OperationalError

import audit
import importer
import ip_import
import ipindex
import permissions
import workflow.imports as imports
import workflow.ip as ip
import xlsx_reader
from extensions import begin_write, db
from ip_import import SHEETS, CellError, Codes, Sheet
from models import (
    AllocationMethod,
    AuditEvent,
    ImportJob,
    IpAllocation,
    IpBlock,
    IpOrigin,
    IpSelfBrought,
    JobState,
    User,
    utcnow,
)
from permissions import Action
from rawsql import BulkInsert
from workflow.errors import NotFound, WorkflowError
from workflow.ip_findings import mark_stale

KIND = "ip"
PROGRESS_EVERY = 5000
AUDIT_CHUNK = 10_000  # audit events per transaction after the import
ATTEMPTS = 3  # checks run again when a change was recorded meanwhile; then the job fails asking to retry
CODE_FIELDS = ("user_nature", "user_category", "user_industry", "province_code", "city_code", "county_code")
#: the user-unit fields each allocation method requires, as `workflow.ip.method_problems` requires them
REQUIRED = {AllocationMethod.ALLOCATED: ip.ALLOCATED_REQUIRED, AllocationMethod.SELF_USE: ip.SELF_USE_REQUIRED,
            AllocationMethod.RESERVED: ()}
CHANGED = "检查期间IP地址备案记录一再发生变化，已检查 {n} 次仍未能导入，未导入任何数据；请稍后重新上传。"


def may_import_ip(actor: Any) -> bool:
    return permissions.can(actor, Action.IP_REPORT)


def queue_ip_import(actor: User, filename: str, stream: IO[bytes]) -> ImportJob:
    """Store the upload and queue it for the worker, as a job of kind "ip"."""
    if not may_import_ip(actor):
        raise NotFound()
    return imports.queue_import(actor, filename, stream, kind=KIND)


# --- checking ---------------------------------------------------------------------------------------------

@dataclasses.dataclass(slots=True)
class Checked:
    """A row that passed its own checks: what the import writes."""

    kind: str
    row: int
    data: Any
    keys: ip.KeyRange
    block: int | str | None = None  # an allocation's source block: a database id, or the start key of a file row


class Intervals:
    """The ranges of one kind read from the file, as (start, end, row); overlaps found by sorting."""

    def __init__(self) -> None:
        self.items: list[tuple[int, int, int]] = []

    def add(self, keys: ip.KeyRange, row: int) -> None:
        self.items.append((keys.start, keys.end, row))

    def overlaps(self) -> Iterator[tuple[tuple[int, int, int], tuple[int, int, int]]]:
        """(earlier, later) for each range that overlaps one before it in address order."""
        self.items.sort()
        reach: tuple[int, int, int] | None = None
        for item in self.items:
            if reach is not None and item[0] <= reach[1]:
                yield reach, item
            if reach is None or item[1] > reach[1]:
                reach = item

    def holder(self, keys: ip.KeyRange) -> tuple[int, int, int] | None:
        """The range wholly holding `keys` (the one with the greatest start ≤ its start), once sorted."""
        index = bisect.bisect_right(self.items, (keys.start, 1 << 129, 0)) - 1
        found = self.items[index] if index >= 0 else None
        return found if found is not None and found[1] >= keys.end else None


class Checker:
    """Every row of the file through the workflow's rules; the errors kept on disk, the passed rows spilled to
    a temporary file (5,000 at a time) while there is no error."""

    def __init__(self, actor: User) -> None:
        self.actor = actor
        self.codes = Codes()
        self.errors = ip_import.error_log()
        self.file = {sheet.kind: Intervals() for sheet in SHEETS}
        self.unit_blocks = Intervals()  # the unit's source blocks in the database, with their ids
        self.block_ids: dict[tuple[int, int], int] = {}
        for block_id, start, end in db.session.execute(select(IpBlock.id, IpBlock.start_key, IpBlock.end_key).where(
                IpBlock.unit_id == actor.id)):
            self.unit_blocks.items.append((int(start, 16), int(end, 16), 0))
            self.block_ids[int(start, 16), int(end, 16)] = block_id
        self.unit_blocks.items.sort()
        self.used_blocks: set[int] = set()
        self.blocks_read = False  # the file's blocks (the first sheet) are all read: sorted for the allocations
        self.code_problems: dict[tuple[str, ...], list[ip.CodedProblem]] = {}
        self.counts = {sheet.kind: 0 for sheet in SHEETS}
        self.spill = importer.RowSpill(self.errors)
        #: the audit log's integrated size when the checks began (the caller sequenced it just before): every
        #: event committed since is still waiting (no place) or has a greater place
        self.started_after = audit.tree_size()

    # --- one row -----------------------------------------------------------------------------------------
    def check(self, sheet: Sheet, number: int, cells: list[str]) -> None:
        if not any(cells):
            return  # an empty line
        data, unreadable = ip_import.parse_row(sheet, number, cells, self.codes)
        for error in unreadable:
            self.errors.append(error)
        skip = {sheet.columns[error.column - 1].key for error in unreadable}
        try:
            keys = ip.parse_range(data.start, data.end)
        except ip.IpError as refused:
            self._report(sheet, number, cells, refused.coded, skip)
            return
        self.counts[sheet.kind] += 1
        self.file[sheet.kind].add(keys, number)
        problems = {"block": self._block_problems, "allocation": self._allocation_problems,
                    "self_brought": self.self_brought_problems}[sheet.kind](data, keys)
        self._report(sheet, number, cells, problems, skip)
        if sheet.kind == "allocation":
            self._place(sheet, Checked(sheet.kind, number, data, keys))
        else:
            self.spill.keep(Checked(sheet.kind, number, data, keys))

    def _report(self, sheet: Sheet, number: int, cells: list[str], problems: Iterable[ip.CodedProblem],
                skip: frozenset[str] | set[str] = frozenset()) -> None:
        for field, code, message in problems:
            if field in skip:
                continue  # the cell could not be read: said already
            column = sheet.position(field)
            value = cells[column - 1] if 0 < column <= len(cells) else ""
            self.errors.append(CellError(sheet.kind, number, column, value, code, message))

    def _block_problems(self, data: ip.BlockData, keys: ip.KeyRange) -> list[ip.CodedProblem]:
        problems = list(ip.block_origin_problems(self.actor, data))
        overlap = ip.block_overlap_problem(self.actor, keys)
        return [*problems, *([overlap] if overlap else [])]

    def self_brought_problems(self, data: ip.SelfBroughtData, keys: ip.KeyRange) -> list[ip.CodedProblem]:
        return list(ip.self_brought_problems(self.actor, data, keys, None))

    def _allocation_problems(self, data: ip.AllocationData, keys: ip.KeyRange) -> list[ip.CodedProblem]:
        """The method's rules, as `workflow.ip.method_problems` applies them: for a method with a user unit,
        `user_unit_problems` in two halves whose problems together are the whole call's — the code-table fields
        (checked once per combination of codes) and the others (no query)."""
        required = REQUIRED.get(data.method)
        if required is None:  # 再分配 (the receiving unit), or no method: no user unit to check
            return list(ip.method_problems(self.actor, data))
        codes = tuple(getattr(data, name) for name in CODE_FIELDS)
        if (data.method, *codes) not in self.code_problems:
            self.code_problems[data.method, *codes] = list(ip.user_unit_problems(
                ip.UserUnitData(**dict(zip(CODE_FIELDS, codes, strict=True))),
                tuple(name for name in required if name in CODE_FIELDS)))
        rest = dataclasses.replace(data, **dict.fromkeys(CODE_FIELDS, ""))
        return [*self.code_problems[data.method, *codes],
                *ip.user_unit_problems(rest, tuple(name for name in required if name not in CODE_FIELDS))]

    # --- the file as a whole ----------------------------------------------------------------------------
    def finish(self) -> None:
        """What needs every row: overlaps inside the file, and with the unit's allocations in the database."""
        for kind in ("block", "allocation", "self_brought"):
            for earlier, later in self.file[kind].overlaps():
                self.errors.append(CellError(kind, later[2], 1, ipindex.address_text(later[0]), "2003",
                                             f"与本工作表第 {earlier[2]} 行的地址段 "
                                             f"{ipindex.range_text(earlier[0], earlier[1])} 重叠。"))
        self._database_overlaps()
        self.spill.flush()

    def _place(self, sheet: Sheet, row: Checked) -> None:
        """The allocation's source block: one of the file's, or one of the unit's (else the workflow's 2005)."""
        if not self.blocks_read:
            self.file["block"].items.sort()
            self.blocks_read = True
        held = self.file["block"].holder(row.keys)
        if held is not None:
            row.block = ipindex.hex_key(held[0])
        elif (in_database := self.unit_blocks.holder(row.keys)) is not None:
            row.block = self.block_ids[in_database[0], in_database[1]]
            self.used_blocks.add(row.block)
        else:
            try:  # the workflow says why (and finds a block reported since the unit's were read)
                row.block = ip.source_block(self.actor, row.keys).id
                self.used_blocks.add(row.block)
            except ip.IpError as refused:
                self._report(sheet, row.row, [row.data.start, row.data.end], refused.coded)
                return
        self.spill.keep(row)

    def _database_overlaps(self) -> None:
        """The file's allocations against the unit's in one pass in address order (the unit's never overlap:
        the only candidates are the last one starting at or before a range and the next one)."""
        rows = self.file["allocation"].items  # sorted by overlaps()
        if not rows:
            return
        first = ipindex.hex_key(rows[0][0])
        before = db.session.scalar(select(func.max(IpAllocation.start_key)).where(
            IpAllocation.unit_id == self.actor.id, IpAllocation.start_key <= first)) or first
        stored = iter(db.session.connection().execute(select(IpAllocation.start_key, IpAllocation.end_key).where(
            IpAllocation.unit_id == self.actor.id, IpAllocation.start_key >= before,
            IpAllocation.start_key <= ipindex.hex_key(max(row[1] for row in rows)))
            .order_by(IpAllocation.start_key).execution_options(stream_results=True)))
        current: tuple[int, int] | None = None
        following = next(stored, None)
        sheet = ip_import.SHEET_OF["allocation"]
        for start, end, number in rows:
            while following is not None and int(following[0], 16) <= start:
                current, following = (int(following[0], 16), int(following[1], 16)), next(stored, None)
            if (current is not None and current[1] >= start) or (
                    following is not None and int(following[0], 16) <= end):
                keys = ip.KeyRange(ipindex.family_of(start), start, end)
                problem = ip.allocation_overlap(self.actor, keys)
                self._report(sheet, number, [ipindex.address_text(start)], [problem] if problem else [])

    # --- the rows kept for the import ---------------------------------------------------------------------
    def rows(self) -> Iterator[list[Any]]:
        """The checked rows again, 5,000 at a time, in file order."""
        return self.spill.chunks()

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def close(self) -> None:
        self.spill.close()
        self.errors.close()


def _check(job: ImportJob, actor: User, path: Path) -> Checker:
    """Reading and checking every sheet; only reads (no write lock), the progress in short transactions."""
    kind = xlsx_reader.check_container(path)
    titles = ip_import.sheet_titles(path, kind)
    present = [sheet for sheet in SHEETS if sheet.title in titles]
    if not present:
        raise xlsx_reader.ImportRefused("文件中没有“来源信息”“分配及使用信息”“自带IP”工作表；请下载IP地址导入模板，"
                                     "在其中填写。")
    imports._progress(job, phase="checking")
    checker = Checker(actor)
    try:
        done = 0
        for sheet in present:  # one sheet at a time: one reader (and its shared strings) in memory
            done = _check_sheet(job, checker, path, kind, sheet, done)
        imports._progress(job, done_rows=done, total_rows=done, phase="importing")
        checker.finish()
    except BaseException:
        checker.close()
        raise
    if not checker.total and not checker.errors:
        checker.errors.append(CellError("", 0, 0, "", "", "文件中没有数据行。"))
    return checker


def _check_sheet(job: ImportJob, checker: Checker, path: Path, kind: str, sheet: Sheet, done: int) -> int:
    """One sheet's rows through the checker; the rows read so far (all sheets) returned."""
    header, rows, declared = ip_import.read_sheet(path, kind, sheet)
    ip_import.check_header(sheet, header)
    if done + declared > ip_import.max_rows():
        raise xlsx_reader.ImportRefused(ip_import.too_many(done + declared))
    imports._progress(job, total_rows=done + declared)
    for number, cells in rows:
        done += 1
        if done > ip_import.max_rows():
            raise xlsx_reader.ImportRefused(ip_import.too_many(done))
        checker.check(sheet, number, cells)
        if done % PROGRESS_EVERY == 0:
            imports._progress(job, done_rows=done)
    return done


# --- importing --------------------------------------------------------------------------------------------

#: the records an import adds: their audit action, object type and the detail the workflow records
RECORDS = {IpBlock: ("ip.block.added", "ip_block", "origin"),
           IpAllocation: ("ip.allocation.added", "ip_allocation", "method"),
           IpSelfBrought: ("ip.self_brought.added", "ip_self_brought", None)}


class _Changed(Exception):
    """A change that could invalidate the checks was recorded while they ran."""


_INSERTS: dict[str, BulkInsert] = {}


def _insert(model: Any, rows: list[dict[str, Any]]) -> None:
    if rows:
        key = f"{model.__tablename__}:{','.join(rows[0])}"
        if key not in _INSERTS:
            _INSERTS[key] = BulkInsert(model.__table__, rows[0])
        _INSERTS[key].run(rows)


def _columns(model: Any, record: SimpleNamespace, stamp: datetime, **fixed: Any) -> dict[str, Any]:
    """The values the workflow's fill functions set on `record`, as the model's insert row (a date as the text
    SQLAlchemy stores in SQLite)."""
    values = {**vars(record), **fixed, "created_at": stamp, "updated_at": stamp}
    row = {column.key: values.get(column.key) for column in model.__table__.columns if column.key != "id"}
    if isinstance(row.get("allocated_on"), date) and db.engine.dialect.name == "sqlite":
        row["allocated_on"] = row["allocated_on"].isoformat()
    return row


class Writer:
    """The checked rows as multi-row inserts, filled by the workflow's own functions (`set_block_origin`,
    `fill_allocation`, `fill_self_brought`, `add_received_block`)."""

    def __init__(self, actor: User) -> None:
        self.actor, self.stamp = actor, utcnow()
        self.file_blocks: dict[str, int] = {}  # start key → id of the blocks the file added
        self.count = 0
        #: the greatest id of each table before and after the inserts: the new records are found between
        self.before = {model: db.session.scalar(select(func.max(model.id))) or 0 for model in RECORDS}
        self.after = dict(self.before)

    def write(self, chunk: list[Checked]) -> None:
        blocks = [row for row in chunk if row.kind == "block"]
        allocations = [row for row in chunk if row.kind == "allocation"]
        brought = [row for row in chunk if row.kind == "self_brought"]
        self._blocks(blocks)
        self._allocations(allocations)
        _insert(IpSelfBrought, [self._self_brought(row) for row in brought])
        self.count += len(chunk)

    def _blocks(self, rows: list[Checked]) -> None:
        records = []
        for row in rows:
            record = SimpleNamespace(remark=row.data.remark.strip())
            ip.set_block_origin(record, row.data)
            ip.set_range(record, row.keys)
            records.append(_columns(IpBlock, record, self.stamp, unit_id=self.actor.id, derived=False,
                                    allocation_id=None))
        _insert(IpBlock, records)
        self.file_blocks |= self.ids_of(IpBlock, [row.keys.start_key for row in rows], IpBlock.derived.is_(False))

    def _allocations(self, rows: list[Checked]) -> None:
        records, given = [], []
        for row in rows:
            record = SimpleNamespace()
            block = row.block if isinstance(row.block, int) else self.file_blocks[row.block]
            ip.fill_allocation(record, row.data, row.keys, SimpleNamespace(id=block))
            records.append(_columns(IpAllocation, record, self.stamp, unit_id=self.actor.id))
            if record.target_unit_id is not None:
                given.append(record)
        _insert(IpAllocation, records)
        ids = self.ids_of(IpAllocation, [record.start_key for record in given])
        for record in given:  # 再分配: the receiving unit's source block, made as the workflow makes it
            ip.add_received_block(self.actor, SimpleNamespace(**vars(record), id=ids[record.start_key]))

    def _self_brought(self, row: Checked) -> dict[str, Any]:
        record = SimpleNamespace()
        ip.fill_self_brought(record, row.data, row.keys)
        return _columns(IpSelfBrought, record, self.stamp, unit_id=self.actor.id)

    def ids_of(self, model: Any, starts: list[str], *where: Any) -> dict[str, int]:
        found: dict[str, int] = {}
        for first in range(0, len(starts), 500):
            found |= dict((start, record_id) for record_id, start in db.session.execute(select(
                model.id, model.start_key).where(model.unit_id == self.actor.id, *where,
                                                 model.start_key.in_(starts[first:first + 500]))))
        return found


def _relevant_changes(actor: User, checker: Checker) -> Any:
    """The audit events that could invalidate the checks: the unit's own changes, blocks reported or changed
    anywhere and other imports (when the file adds blocks), a change of a re-allocation (when the file
    allocates from the unit's blocks)."""
    conditions = [AuditEvent.actor_id == actor.id]
    if checker.counts["block"]:
        conditions += [AuditEvent.action.like("ip.block.%"), AuditEvent.action == "import.done"]
    if checker.used_blocks:
        conditions.append(AuditEvent.action.in_(("ip.allocation.changed", "ip.allocation.deleted")))
    since = or_(AuditEvent.seq.is_(None), AuditEvent.seq > checker.started_after)
    return select(AuditEvent.id).where(since, or_(*conditions)).limit(1)


def _commit(job: ImportJob, actor: User, checker: Checker) -> Writer:
    """One write transaction: the unit and the source blocks used locked (as the workflow locks them), every
    row inserted, then nothing relevant recorded since the checks began. No lock of the whole audit log is
    needed: a change that could still be uncommitted here either waits on the same locks (the unit's own
    changes lock the unit, a source block's changes lock the block) and is seen once they are taken, or adds a
    block, which PostgreSQL's exclusion constraint refuses (IntegrityError: checked again); SQLite's write
    transactions are serial."""
    with imports._writing(job):
        writer = Writer(actor)
        ip.require_reporter(actor)
        ip.lock_unit(actor)
        used = sorted(checker.used_blocks)
        for first in range(0, len(used), 500):
            db.session.execute(select(IpBlock.id).where(IpBlock.id.in_(used[first:first + 500])).with_for_update())
        for chunk in checker.rows():
            writer.write(chunk)
        if db.session.scalar(_relevant_changes(actor, checker)) is not None:
            raise _Changed()
        writer.after = {model: db.session.scalar(select(func.max(model.id))) or 0 for model in RECORDS}
        mark_stale()
        job.imported = writer.count
        imports._finish(job, actor, JobState.DONE)
        _audit_records(actor, writer)
    return writer


def run_ip_import(job: ImportJob) -> ImportJob:
    """Check the whole file, then import all of it or nothing. Never raises for a bad file."""
    with imports.claimed(job), imports.uploaded_file(job) as path:
        return _run_ip_import(job, path)


def _run_ip_import(job: ImportJob, path: Path) -> ImportJob:
    actor = db.session.get(User, job.user_id)
    imports._progress(job, phase="reading", imported=0)
    if actor is None or not may_import_ip(actor):
        return imports.fail(job, actor, [_file_error("无导入权限。")])
    for _attempt in range(ATTEMPTS):
        checker: Checker | None = None
        try:
            audit.sequence_pending(limit=None)  # the checks start from the integrated log (Checker.started_after)
            with imports._reading():
                checker = _check(job, actor, path)
                if checker.errors:
                    return imports.refuse(job, actor, path, checker.errors, ip_import.write_marked)
            _commit(job, actor, checker)
            return job
        except _Changed:
            continue  # a change recorded meanwhile: check again
        except (IntegrityError, OperationalError, db.engine.dialect.loaded_dbapi.Error) as error:
            if not ip.refused_as_overlap(error):
                raise
            continue  # a racing overlap refused by PostgreSQL: check again
        except xlsx_reader.ImportRefused as refused:
            return imports.fail(job, actor, [_file_error(refused.message)])
        except WorkflowError as refused:  # the unit was disabled meanwhile
            return imports.fail(job, actor, [_file_error(refused.message)])
        finally:
            if checker is not None:
                checker.close()
    return imports.fail(job, actor, [_file_error(CHANGED.format(n=ATTEMPTS))])


def _file_error(message: str) -> CellError:
    return CellError("", 0, 0, "", "", message)


def _audit_records(actor: User, writer: Writer) -> None:
    """In the import's one write transaction, after its checks: one audit event per new record, as the workflow
    writes them, AUDIT_CHUNK per insert — the records and their events committed together (events written after,
    in transactions of their own, were lost with a worker killed between two of them).
    The new records lie between the greatest ids before and after the inserts (read by primary key) and are
    the unit's bearing the import's timestamp (others may have written in between, on PostgreSQL)."""
    for model, (action, object_type, detail) in RECORDS.items():
        columns = [model.id, model.start_key, model.end_key, model.unit_id, model.created_at,
                   *([getattr(model, detail)] if detail else [])]
        last = writer.before[model]
        while last < writer.after[model]:
            rows = db.session.execute(select(*columns).where(model.id > last, model.id <= writer.after[model])
                                      .order_by(model.id).limit(AUDIT_CHUNK)).all()
            audit.record_many([(action, {
                "object_type": object_type, "object_id": row[0], "province_code": actor.province_code,
                "actor": actor, "changes": {"range": ipindex.range_text(row[1], row[2]),
                                            **({detail: str(row[5])} if detail else {})}})
                for row in rows if row[3] == actor.id and row[4] == writer.stamp])
            last = rows[-1][0] if rows else writer.after[model]


# --- export -----------------------------------------------------------------------------------------------

def _usernames(ids: Iterable[int | None]) -> dict[int, str]:
    wanted = sorted({value for value in ids if value is not None})
    return dict(db.session.execute(select(User.id, User.username).where(User.id.in_(wanted))).all())


def _records(model: Any, actor: User, *where: Any) -> Iterator[Any]:
    """The records the actor sees, 1,000 at a time in (unit, address) order, each with the usernames it names
    (the identity map holds them weakly: memory stays bounded)."""
    query = (select(model).where(permissions.ip_record_scope(actor, model), *where)
             .order_by(model.unit_id, model.start_key).execution_options(yield_per=1000))
    for partition in db.session.execute(query).scalars().partitions():
        names = _usernames(value for record in partition for value in (
            record.unit_id, getattr(record, "source_unit_id", None), getattr(record, "target_unit_id", None)))
        for record in partition:
            yield record, names


def _as_data(sheet: Sheet, record: Any, names: dict[int, str]) -> SimpleNamespace:
    """A record as the sheet's row: the workflow's data fields, addresses and account names as typed."""
    values = {column.key: getattr(record, column.key, "") for column in sheet.columns}
    values |= {"start": ipindex.address_text(record.start_key), "end": ipindex.address_text(record.end_key),
               "unit": names.get(record.unit_id, "")}
    if sheet.kind == "block":
        values["origin"] = str(record.origin)
        values["source_unit"] = names.get(record.source_unit_id, "")
    elif sheet.kind == "allocation":
        values["target_unit"] = names.get(record.target_unit_id, "")
    else:
        values["source_unit"] = names.get(record.source_unit_id, "")
    return SimpleNamespace(**values)


def _sheet_rows(sheet: Sheet, model: Any, actor: User, *where: Any) -> Iterator[SimpleNamespace]:
    return (_as_data(sheet, record, names) for record, names in _records(model, actor, *where))


def export_ip_records(actor: User, target: Path) -> dict[str, int]:
    """The IP reports the actor sees — a reporting unit its own, a bureau those of its province's units, MIIT
    all — written to `target` in the template's sheets and columns (blocks made by another unit's
    re-allocation are left out: that unit's allocation makes them). Overseers' exports name each record's unit
    in a last column. Audited; returns the rows per sheet."""
    if not (permissions.can(actor, Action.IP_REPORT) or permissions.can(actor, Action.IP_LIST)):
        raise NotFound()
    conditions = {"block": (IpBlock.origin != IpOrigin.ALLOCATION,), "allocation": (), "self_brought": ()}
    models = {"block": IpBlock, "allocation": IpAllocation, "self_brought": IpSelfBrought}
    sheets = {sheet.kind: _sheet_rows(sheet, models[sheet.kind], actor, *conditions[sheet.kind]) for sheet in SHEETS}
    overseer = not permissions.can(actor, Action.IP_REPORT)
    written = ip_import.write_export(target, sheets, Codes(), (lambda row: row.unit) if overseer else None)
    begin_write()
    audit.record("export", object_type="ip_reports", actor=actor, changes={"rows": written})
    db.session.commit()
    return written
