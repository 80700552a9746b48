"""Chinese, Japanese and Korean text as search terms, as Elasticsearch's `cjk` analyzer makes them: widths folded
(full-width Latin to ASCII, half-width katakana to full width), then every run of Han, kana and Hangul characters cut
into overlapping bigrams ("中文分词" -> 中文 文分 分词), a character standing alone kept as itself. Text without
spaces between words is then searchable by any two characters of it, and a longer query matches best where its
bigrams come in order. The bigrams are in simplified characters (`simplified`: OpenCC's traditional-to-simplified
table, character for character), so a query typed in traditional characters finds a line written in simplified ones
and the reverse; Elasticsearch's CJK subfields do the same with a `mapping` char filter of the same table
(`folding_rules`).

Latin words are left to the English analysis of the same field; only the CJK runs become terms here. Elasticsearch's
`english` analyzer (its standard tokenizer) also cuts CJK text into single characters; `characters` gives the
embedded index the same.
"""

from __future__ import annotations

import functools
import html
import re
import unicodedata

from cinedex.core.packages import package_data

# Han (with extensions and compatibility ideographs), hiragana, katakana (and its phonetic extensions), Hangul
# syllables and jamo: the scripts Elasticsearch's cjk_bigram filter pairs.
_CJK_RUN = re.compile(
    "[\u1100-\u11ff\u3040-\u309f\u30a0-\u30ff\u3130-\u318f\u31f0-\u31ff\u3400-\u4dbf\u4e00-\u9fff"
    "\uac00-\ud7af\uf900-\ufaff\U00020000-\U0003134f]+")


def _fold(text: str) -> str:
    """Width folding character by character (NFKC where it keeps one character for one), so offsets in the folded
    text are offsets in the original, and lowercase."""
    return "".join(folded if len(folded := unicodedata.normalize("NFKC", c)) == 1 else c for c in text).lower()


@functools.cache
def _traditional_to_simplified() -> dict[int, str]:
    """OpenCC's traditional-to-simplified characters (Apache-2.0, in the opencc-python-reimplemented wheel), one for
    one (the first where it lists several)."""
    table = {}
    for line in package_data("opencc", "dictionary", "TSCharacters.txt").read_text(encoding="utf-8").splitlines():
        traditional, _, simplified = line.partition("\t")
        target = simplified.split()[0] if simplified.split() else ""
        if len(traditional) == 1 and len(target) == 1 and traditional != target:
            table[ord(traditional)] = target
    return table


def simplified(text: str) -> str:
    """The text with traditional characters as simplified ones; one character for one, so offsets hold."""
    return text.translate(_traditional_to_simplified())


def folding_rules() -> list[str]:
    """The same table as an Elasticsearch `mapping` char filter's rules ("夢=>梦")."""
    return [f"{chr(code)}=>{target}" for code, target in sorted(_traditional_to_simplified().items())]


def runs(text: str) -> list[tuple[int, str]]:
    """(offset, run) for each run of CJK characters in the folded text."""
    return [(m.start(), m.group()) for m in _CJK_RUN.finditer(_fold(text))]


def bigrams(text: str) -> list[str]:
    """The text's CJK terms in order: each run's bigrams, or the run itself when it is one character."""
    terms = []
    for _, run in runs(text):
        run = simplified(run)
        terms.extend([run] if len(run) == 1 else [run[i:i + 2] for i in range(len(run) - 1)])
    return terms


def characters(text: str) -> list[str]:
    """The text's CJK characters one by one, simplified: what Elasticsearch's CJK subfields also index (as
    unigrams), so a query of one character finds every line holding it, in either script, on both backends."""
    return [c for _, run in runs(text) for c in simplified(run)]


def highlight(text: str, terms: list[str], max_chars: int) -> str:
    """The text around its first match of any of the CJK `terms`, escaped, the matched characters in <b>; "" when
    none matches. The same HTML as the English highlights (escaped text, <b> marks)."""
    wanted = set(terms)
    marked = [False] * len(text)
    for offset, run in runs(text):
        run = simplified(run)
        grams = [(i, run[i:i + 2]) for i in range(len(run) - 1)] if len(run) > 1 else [(0, run)]
        for i, gram in grams:
            if gram in wanted:
                for j in range(offset + i, offset + i + len(gram)):
                    marked[j] = True
    if not any(marked):
        return ""
    first = marked.index(True)
    start = max(0, min(first - max_chars // 4, len(text) - max_chars))
    end = min(len(text), start + max_chars)
    parts, bold = [], False
    for i in range(start, end):
        if marked[i] != bold:
            parts.append("<b>" if marked[i] else "</b>")
            bold = marked[i]
        parts.append(html.escape(text[i], quote=False))
    if bold:
        parts.append("</b>")
    return "".join(parts)
