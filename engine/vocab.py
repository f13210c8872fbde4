"""Common English word tokens of the Llama-3 vocabulary, for readable `timing`-mode output.

Ids were checked against Meta's Llama-3 `tokenizer.model` (tiktoken BPE, 128,000 ranks): each
word with its leading space is exactly one token (tests re-check this when the tokenizer is at hand).
"""

from __future__ import annotations

WORD_TOKENS: dict[str, int] = {
    " the": 279, " of": 315, " and": 323, " to": 311, " a": 264, " in": 304, " is": 374,
    " that": 430, " for": 369, " it": 433, " with": 449, " as": 439, " on": 389, " was": 574,
    " be": 387, " this": 420, " are": 527, " by": 555, " at": 520, " from": 505, " or": 477,
    " an": 459, " not": 539, " have": 617, " can": 649, " which": 902, " you": 499, " will": 690,
    " more": 810, " one": 832, " all": 682, " their": 872, " has": 706, " time": 892,
    " other": 1023, " some": 1063, " people": 1274, " what": 1148, " when": 994, " there": 1070,
    " use": 1005, " also": 1101, " about": 922, " how": 1268, " these": 1521, " may": 1253,
    " new": 502, " first": 1176, " most": 1455, " many": 1690, " into": 1139, " way": 1648,
    " well": 1664, " work": 990, " make": 1304, " like": 1093, " system": 1887, " data": 828,
    " water": 3090, " help": 1520, " good": 1695, " world": 1917, " part": 961, " over": 927,
    " only": 1193, " years": 1667, " each": 1855, " such": 1778, " different": 2204,
    " used": 1511, " very": 1633, " important": 3062, " small": 2678, " process": 1920,
    " number": 1396, " light": 3177, " large": 3544, " place": 2035, " life": 2324,
    " found": 1766, " still": 2103, " great": 2294, " change": 2349, " high": 1579,
    " form": 1376, " power": 2410,
}
PERIOD_ID = 13  # "."
COMMA_ID = 11  # ","
WORD_IDS: tuple[int, ...] = tuple(WORD_TOKENS.values())
EOT_ID = 128009  # <|eot_id|>, Llama-3-Instruct's end of turn

# `timing_tokens: multilingual`: the Llama-3 ids of this text, emitted in a cycle. Several of them
# hold part of a character only (the emoji, 龘 and 𝄞 are split across 2-3 tokens), so streamed
# chunks end mid-character: what the detokenizer must get right end to end (tests check both).
MULTILINGUAL_TEXT = " été, déjà, naïve. 你好, мир! 🚀🎉 龘 𝄞 ✓"
MULTILINGUAL_IDS: tuple[int, ...] = (
    24560, 11, 46939, 11, 95980, 588, 13, 118195, 53901, 11, 115388, 0,
    11410, 248, 222, 9468, 236, 231, 118047, 246, 82350, 226, 252, 53475,
)

