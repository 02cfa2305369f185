"""Terminal tables that fit the terminal: no cell cut to an ellipsis, at 80 columns or at 200.

A table is columns (a header, a priority) and rows of rich-markup cells; a cell may come in two forms,
(full, short), e.g. a speedup with and without its interval. To fit the console:
1. columns whose every cell is the same move into the title ("cpu, float32, 2048x2048");
2. while it is too wide, the column of lowest priority that still shows full cells shows short ones;
3. then the column of lowest priority goes.
What steps 2 and 3 took away is in the run's files, and the caption says so. No cell is wrapped or cut:
a number either shows whole or its column is not shown.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Union

from rich import box
from rich.table import Table
from rich.text import Text

KEEP = 100  # a priority at or above this is never dropped (it may still show its short cells)

Cell = Union[str, tuple[str, str]]  # markup, or (full, short) markup


@dataclass(frozen=True)
class Column:
    header: str
    priority: int = 50  # lower goes short, then goes, first
    justify: str = "right"
    label: str = ""  # how a constant value reads in the title: "k" -> "k 128"; "" -> the value alone


def _width(markup: str) -> int:
    return max(Text.from_markup(line).cell_len for line in markup.split("\n"))


def _form(cell: Cell, short: bool) -> str:
    return cell if isinstance(cell, str) else cell[1 if short else 0]


def table_width(headers: list[str], rows: list[list[str]]) -> int:
    """The width of a fitted table (box.SIMPLE_HEAD, no edges): each column its widest cell, columns
    one space of padding either side and one line between them."""
    widths = [max([_width(h)] + [_width(r[i]) for r in rows]) for i, h in enumerate(headers)]
    return sum(widths) + 3 * len(widths) - 1


def fitted_table(title: str, columns: list[Column], rows: list[list[Cell]], width: int, caption: str = "",
                 files: str = "") -> Table:
    """The table for a console `width` columns wide (see the module docstring); `files` says where the
    values it leaves out are ("kernels.csv")."""
    keep = list(range(len(columns)))
    constant = [i for i in keep if len(rows) > 1 and columns[i].priority < KEEP
                and len({_form(r[i], False) for r in rows}) == 1]
    if constant:
        title += ": " + ", ".join(f"{columns[i].label} {Text.from_markup(_form(rows[0][i], False)).plain}".strip()
                                  for i in constant)
        keep = [i for i in keep if i not in constant]
    short: set[int] = set()

    def width_now() -> int:
        return table_width([columns[i].header for i in keep], [[_form(r[i], i in short) for i in keep] for r in rows])

    shortened, dropped = [], []
    while width_now() > width:
        two_forms = [i for i in keep if i not in short and any(not isinstance(r[i], str) for r in rows)]
        if two_forms:
            i = min(two_forms, key=lambda i: (columns[i].priority, -i))
            short.add(i)
            shortened.append(columns[i].header)
            continue
        candidates = [i for i in keep if columns[i].priority < KEEP]
        if not candidates:
            break
        i = min(candidates, key=lambda i: (columns[i].priority, -i))
        keep.remove(i)
        dropped.append(columns[i].header)
    notes = [caption] if caption else []
    if shortened:
        notes.append(f"intervals not shown at this width: {', '.join(h.replace(chr(10), ' ') for h in shortened)}")
    if dropped:
        notes.append(f"columns not shown at this width: {', '.join(h.replace(chr(10), ' ') for h in dropped)}")
    if (shortened or dropped) and files:
        notes.append(f"all of them in {files}")
    table = Table(title=title, caption="; ".join(notes) or None, box=box.SIMPLE_HEAD, show_edge=False,
                  title_justify="left", caption_justify="left", title_style="bold", caption_style="dim")
    for i in keep:
        table.add_column(columns[i].header, justify=columns[i].justify, no_wrap=True)
    for r in rows:
        table.add_row(*[_form(r[i], i in short) for i in keep])
    return table
