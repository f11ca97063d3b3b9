"""Person names into Salesforce's LastName / FirstName, and concatenation of columns.

Chinese names are written surname first with no space; about eighty surnames have two characters
(欧阳, 司马, 诸葛, 上官 ...), so ``欧阳娜娜`` is 欧阳 + 娜娜, not 欧 + 阳娜娜. Names with a middle dot
(``买买提·吐尔逊``) carry the family part last. Latin names are ``First Last`` or ``Last, First``.
"""

from __future__ import annotations

import re
from typing import Literal

import pandas as pd
from pydantic import Field

from crmbridge.mappings.transforms_base import FAIL, Applied, Params, as_text, finish, is_missing, map_unique

COMPOUND_SURNAMES = frozenset("""
欧阳 司马 诸葛 上官 东方 皇甫 尉迟 公孙 慕容 长孙 宇文 司徒 令狐 夏侯 轩辕 端木 独孤 南宫 西门 百里 呼延
东郭 闻人 万俟 澹台 濮阳 赫连 申屠 太史 钟离 宗政 仲孙 单于 闾丘 公冶 公羊 司空 司寇 亓官 鲜于 拓跋
第五 梁丘 左丘 谷梁 羊舌 微生 公西 乐正 漆雕 壤驷 公良 巫马 子车 颛孙 段干 东门 公上 羊角 拓拔 完颜
夹谷 纳兰 爱新 叶赫 乌雅 富察 钮祜 呼衍 淳于 太叔 申屠 公户 公玉 公仪 梁丘 公仲 公门 长鱼 即墨 诸葛
歐陽 司馬 諸葛 東方 長孫 宇文 令狐 夏侯 軒轅 獨孤 南宮 鍾離 閭丘 鮮于 濮陽 赫連
""".split())

_HAN = re.compile(r"^[\u3400-\u9fff\uf900-\ufaff]+$")
_DOTS = re.compile(r"[·•・‧.．]")


def split_name(full: str) -> tuple[str | None, str | None]:
    """(last, first) for one full name; last is never None for a non-empty name."""
    name = re.sub(r"[\s\u3000]+", " ", full).strip()
    if not name:
        return None, None
    compact = name.replace(" ", "")
    if _DOTS.search(compact) and re.search(r"[\u3400-\u9fff]", compact):
        parts = [p for p in _DOTS.split(compact) if p]
        if len(parts) >= 2:
            return parts[-1], "·".join(parts[:-1])
    if _HAN.match(compact):
        if len(compact) >= 3 and compact[:2] in COMPOUND_SURNAMES:
            return compact[:2], compact[2:]
        if len(compact) == 1:
            return compact, None
        return compact[0], compact[1:]
    if "," in name:
        last, _, first = name.partition(",")
        return last.strip() or first.strip(), (first.strip() or None) if last.strip() else None
    tokens = name.split(" ")
    if len(tokens) == 1:
        return tokens[0], None
    return tokens[-1], " ".join(tokens[:-1])


class NamePartParams(Params):
    part: Literal["last", "first"] = Field(description="'last' for LastName, 'first' for FirstName")


def name_part(series: pd.Series, *, part: str) -> Applied:
    """One part of a full name (Chinese with compound surnames, ``·`` names, or Latin)."""
    idx = 0 if part == "last" else 1

    def one(v: str):
        pair = split_name(v)
        if pair[0] is None:
            return FAIL
        return pair[idx]

    return map_unique(series, one)


class ConcatParams(Params):
    columns: list[str] = Field(min_length=1, description="columns joined in order")
    sep: str = ""
    skip_missing: bool = Field(True, description="leave out missing parts (and their separators)")


def concat(frame: pd.DataFrame, *, columns: list[str], sep: str = "", skip_missing: bool = True) -> Applied:
    """Join several columns into one (``province + city + address`` -> BillingStreet).

    A DataFrame-level transform: the engine passes the rows' columns. Rows where every part is missing
    stay missing.
    """
    parts = [as_text(frame[c]) for c in columns]
    missing = [is_missing(p) for p in parts]
    if skip_missing:
        out = pd.Series(None, index=frame.index, dtype=object)
        for p, m in zip(parts, missing):
            p = p.str.strip()
            out_missing = out.isna()
            joined = out.fillna("") + sep + p.fillna("")
            out = out.where(m, p.where(out_missing, joined))
    else:
        out = parts[0].fillna("")
        for p in parts[1:]:
            out = out + sep + p.fillna("")
    all_missing = pd.concat(missing, axis=1).all(axis=1)
    out = out.astype(object).where(~all_missing, None)
    base = parts[0] if len(columns) == 1 else pd.Series(None, index=frame.index, dtype=object)
    return finish(base, out, pd.Series(False, index=frame.index))
