"""Group commit: the transactions of one partition that arrive while one is under way leave
together, in the next one.

Why: at a burst an executor claims and records dozens of attempts of one collection at the
same second, and all of a collection's rows share one partition. Each transaction on its own
is one table request (about 1-1.5 ms of CPU in the SDK's pipeline, and a round trip); the
same operations in one entity-group transaction cost one request. No timer: a lone
transaction leaves at once (its writer starts as soon as it is asked); whatever arrives while
a transaction is under way waits for it to end and then leaves with the others (split at
MAX_OPERATIONS).

Each caller keeps the semantics of its own transaction (a *member*):
- its operations keep their If-Match and land all together or not at all: a transaction is
  atomic, and a member is never split across two;
- a row is never touched twice in one transaction: a member touching a row that an earlier
  member of the group touches waits for the next transaction (first come, first served);
- when the service refuses the transaction because of one operation (TransactionFailed.index),
  the member owning it gets that refusal (its index made relative to its own operations) and
  the other members are submitted again without it: one member never loses the group;
- any other fault (a network fault, a refusal naming no operation) reaches every member of
  that transaction, which then knows exactly what it would have known alone: nothing, or
  something it cannot tell, about its own operations.
A caller cancelled before its member left removes it (nothing is written); once it left, the
transaction goes on, as a request already sent would.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from azure.data.tables.aio import TableClient

from shared.errors import StorageError
from shared.storage.table_batch import MAX_OPERATIONS, Operation, TransactionFailed, check, submit

Submit = Callable[[TableClient, Sequence[Operation]], Awaitable[list[str | None]]]


@dataclass(eq=False)
class _Member:
    """One caller's transaction: its operations, the rows they touch and the caller's answer."""

    table: TableClient
    operations: Sequence[Operation]
    rows: frozenset[str]
    answer: asyncio.Future[list[str | None]] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )

    def settle(self, etags: list[str | None]) -> None:
        if not self.answer.done():  # a caller cancelled mid-transaction no longer listens
            self.answer.set_result(etags)

    def fail(self, error: BaseException) -> None:
        if not self.answer.done():
            self.answer.set_exception(error)


@dataclass(eq=False)
class _Partition:
    """The members waiting for the next transaction of one partition, and its writer."""

    waiting: list[_Member] = field(default_factory=list)
    writer: asyncio.Task[None] | None = None


class GroupCommit:
    """Entity-group transactions per (table, partition), grouped as they arrive (see module)."""

    def __init__(self, submit_with: Submit = submit) -> None:
        self._submit = submit_with
        self._partitions: dict[tuple[str, str], _Partition] = {}

    async def transact(
        self, table: TableClient, partition: str, operations: Sequence[Operation]
    ) -> list[str | None]:
        """What `table_batch.submit(table, operations)` answers for these operations (the ETag
        each left, or TransactionFailed naming one of them), sharing a transaction with the
        other callers of this partition."""
        check(operations)  # a malformed member fails alone, before it could join a group
        member = _Member(table, operations, frozenset(op.entity["RowKey"] for op in operations))
        key = (table.url, partition)
        state = self._partitions.get(key)
        if state is None:
            state = self._partitions[key] = _Partition()
        state.waiting.append(member)
        if state.writer is None:
            state.writer = asyncio.create_task(self._write(key, state))
        # Cancelling the caller cancels `answer`: a member not taken yet is then left out.
        return await member.answer

    async def close(self) -> None:
        """Wait for the transactions under way (their callers may have stopped listening)."""
        writers = [state.writer for state in self._partitions.values() if state.writer]
        await asyncio.gather(*writers, return_exceptions=True)

    async def _write(self, key: tuple[str, str], state: _Partition) -> None:
        """Submit what waits, then what arrived meanwhile, until nothing is left."""
        try:
            while state.waiting:
                await asyncio.gather(*(self._commit(group) for group in _take(state)))
        finally:
            for member in state.waiting:  # only if this writer was cancelled
                member.fail(_abandoned())
            # No await since the loop's last look: nobody joined in between.
            del self._partitions[key]

    async def _commit(self, members: list[_Member]) -> None:
        """One transaction of these members; a member refused by the service is answered and
        the others are submitted again without it."""
        try:
            while members:
                operations = [op for member in members for op in member.operations]
                try:
                    etags = await self._submit(members[0].table, operations)
                except TransactionFailed as refused:
                    owner, index = _owner(members, refused.index)
                    if owner is None:
                        raise
                    owner.fail(TransactionFailed(refused.status, index, refused.message))
                    members = [member for member in members if member is not owner]
                    continue
                start = 0
                for member in members:
                    member.settle(etags[start : start + len(member.operations)])
                    start += len(member.operations)
                return
        except Exception as fault:
            for member in members:
                member.fail(fault)
        except BaseException:  # cancelled mid-transaction: whether it landed is unknown
            for member in members:
                member.fail(_abandoned())
            raise


def _take(state: _Partition) -> list[list[_Member]]:
    """The waiting members that can leave now, as transactions of at most MAX_OPERATIONS; a
    member touching a row already taken stays for the next round (so does one cancelled:
    dropped)."""
    groups: list[list[_Member]] = []
    group: list[_Member] = []
    size = 0
    taken: set[str] = set()
    later: list[_Member] = []
    for member in state.waiting:
        if member.answer.done():
            continue  # its caller was cancelled before it left
        if not taken.isdisjoint(member.rows):
            later.append(member)
            continue
        if size + len(member.operations) > MAX_OPERATIONS:
            groups.append(group)
            group, size = [], 0
        group.append(member)
        size += len(member.operations)
        taken |= member.rows
    if group:
        groups.append(group)
    state.waiting = later
    return groups


def _abandoned() -> StorageError:
    return StorageError("transaction abandoned: the process is stopping")


def _owner(members: list[_Member], index: int | None) -> tuple[_Member | None, int | None]:
    """The member whose operation the service refused, and the operation's index in it."""
    if index is None:
        return None, None
    start = 0
    for member in members:
        if index < start + len(member.operations):
            return (member, index - start) if index >= start else (None, None)
        start += len(member.operations)
    return None, None


__all__ = ["GroupCommit", "Submit"]
