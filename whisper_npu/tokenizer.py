"""Whisper's special tokens over the Hugging Face ``tokenizer.json`` shipped with the model.

Special ids are looked up by their strings, never hard-coded, because the
English-only and multilingual vocabularies are offset by one. Timestamp tokens
are not in ``tokenizer.json``: they are every id from ``<|notimestamps|>`` + 1
upwards, each worth 20 ms.
"""

from __future__ import annotations

import string
from dataclasses import dataclass
from functools import cached_property, lru_cache
from pathlib import Path

from tokenizers import Tokenizer as HFTokenizer

from whisper_npu.constants import TIME_PRECISION
from whisper_npu.errors import ModelError
from whisper_npu.options import TASKS

LANGUAGES = {
    "en": "english", "zh": "chinese", "de": "german", "es": "spanish", "ru": "russian", "ko": "korean",
    "fr": "french", "ja": "japanese", "pt": "portuguese", "tr": "turkish", "pl": "polish", "ca": "catalan",
    "nl": "dutch", "ar": "arabic", "sv": "swedish", "it": "italian", "id": "indonesian", "hi": "hindi",
    "fi": "finnish", "vi": "vietnamese", "he": "hebrew", "uk": "ukrainian", "el": "greek", "ms": "malay",
    "cs": "czech", "ro": "romanian", "da": "danish", "hu": "hungarian", "ta": "tamil", "no": "norwegian",
    "th": "thai", "ur": "urdu", "hr": "croatian", "bg": "bulgarian", "lt": "lithuanian", "la": "latin",
    "mi": "maori", "ml": "malayalam", "cy": "welsh", "sk": "slovak", "te": "telugu", "fa": "persian",
    "lv": "latvian", "bn": "bengali", "sr": "serbian", "az": "azerbaijani", "sl": "slovenian", "kn": "kannada",
    "et": "estonian", "mk": "macedonian", "br": "breton", "eu": "basque", "is": "icelandic", "hy": "armenian",
    "ne": "nepali", "mn": "mongolian", "bs": "bosnian", "kk": "kazakh", "sq": "albanian", "sw": "swahili",
    "gl": "galician", "mr": "marathi", "pa": "punjabi", "si": "sinhala", "km": "khmer", "sn": "shona",
    "yo": "yoruba", "so": "somali", "af": "afrikaans", "oc": "occitan", "ka": "georgian", "be": "belarusian",
    "tg": "tajik", "sd": "sindhi", "gu": "gujarati", "am": "amharic", "yi": "yiddish", "lo": "lao",
    "uz": "uzbek", "fo": "faroese", "ht": "haitian creole", "ps": "pashto", "tk": "turkmen", "nn": "nynorsk",
    "mt": "maltese", "sa": "sanskrit", "lb": "luxembourgish", "my": "myanmar", "bo": "tibetan", "tl": "tagalog",
    "mg": "malagasy", "as": "assamese", "tt": "tatar", "haw": "hawaiian", "ln": "lingala", "ha": "hausa",
    "ba": "bashkir", "jw": "javanese", "su": "sundanese", "yue": "cantonese",
}  # fmt: skip

#: Languages written without spaces between words: split words per unicode character.
NO_SPACE_LANGUAGES = {"zh", "ja", "th", "lo", "my", "yue"}


@lru_cache(maxsize=4)
def _read_hf(path: str, mtime_ns: int, size: int) -> HFTokenizer:
    """Parse tokenizer.json once per file version (keyed by path, mtime and size).

    Why: parsing took ~47 ms, paid on every transcribed file (3.5 % of a tiny.en run over six
    recordings). Sharing is safe because nothing here changes the parsed tokenizer's settings; each
    ``Tokenizer`` keeps its own task and language.
    """
    return HFTokenizer.from_file(path)


@dataclass
class Tokenizer:
    """Text <-> token ids plus the special-token vocabulary Whisper's decoding needs."""

    hf: HFTokenizer
    multilingual: bool
    task: str = "transcribe"
    language: str | None = None

    @classmethod
    def from_file(
        cls, path: str | Path, *, multilingual: bool, task: str = "transcribe", language: str | None = None
    ) -> Tokenizer:
        try:
            stat = Path(path).stat()
            hf = _read_hf(str(Path(path).resolve()), stat.st_mtime_ns, stat.st_size)
        except Exception as exc:  # tokenizers raises its own Exception type
            raise ModelError(f"cannot read tokenizer {path}: {exc}") from None
        if task not in TASKS:
            raise ModelError(f"unknown task {task!r}: use transcribe or translate")
        tok = cls(hf, multilingual, task, language)
        if language is not None and multilingual and tok.language_token(language) is None:
            raise ModelError(f"unsupported language {language!r}")
        return tok

    def _id(self, text: str) -> int:
        token = self.hf.token_to_id(text)
        if token is None:
            raise ModelError(f"tokenizer has no special token {text}")
        return int(token)

    # -- special tokens --------------------------------------------------
    @cached_property
    def eot(self) -> int:
        return self._id("<|endoftext|>")

    @cached_property
    def sot(self) -> int:
        return self._id("<|startoftranscript|>")

    @cached_property
    def sot_prev(self) -> int:
        return self._id("<|startofprev|>")

    @cached_property
    def sot_lm(self) -> int:
        return self._id("<|startoflm|>")

    @cached_property
    def no_speech(self) -> int:
        token = self.hf.token_to_id("<|nospeech|>")
        return int(token) if token is not None else self._id("<|nocaptions|>")

    @cached_property
    def no_timestamps(self) -> int:
        return self._id("<|notimestamps|>")

    @cached_property
    def timestamp_begin(self) -> int:
        return self.no_timestamps + 1

    @cached_property
    def transcribe(self) -> int:
        return self._id("<|transcribe|>")

    @cached_property
    def translate(self) -> int:
        return self._id("<|translate|>")

    def language_token(self, code: str) -> int | None:
        token = self.hf.token_to_id(f"<|{code}|>")
        return int(token) if token is not None else None

    @cached_property
    def language_tokens(self) -> dict[int, str]:
        """Language token id -> code, for the languages this vocabulary has."""
        out = {}
        for code in LANGUAGES:
            token = self.language_token(code)
            if token is not None:
                out[token] = code
        return out

    def sot_sequence(self, language: str | None = None) -> list[int]:
        """[sot] for English-only models; [sot, language, task] for multilingual ones."""
        if not self.multilingual:
            return [self.sot]
        lang = language or self.language or "en"
        lang_token = self.language_token(lang)
        if lang_token is None:
            raise ModelError(f"unsupported language {lang!r}")
        return [self.sot, lang_token, self.transcribe if self.task == "transcribe" else self.translate]

    # -- text ------------------------------------------------------------
    def encode(self, text: str) -> list[int]:
        return list(self.hf.encode(text, add_special_tokens=False).ids)

    def decode(self, tokens: list[int]) -> str:
        """Text of the ordinary tokens (special and timestamp tokens dropped)."""
        return self.hf.decode([t for t in tokens if t < self.eot])

    def decode_with_timestamps(self, tokens: list[int]) -> str:
        """Text with ``<|1.08|>`` markers where timestamp tokens are."""
        parts: list[str] = []
        run: list[int] = []
        for t in tokens:
            if t >= self.timestamp_begin:
                parts.append(self.hf.decode(run))
                run = []
                parts.append(f"<|{(t - self.timestamp_begin) * TIME_PRECISION:.2f}|>")
            elif t < self.eot:
                run.append(t)
        parts.append(self.hf.decode(run))
        return "".join(parts)

    @cached_property
    def non_speech_tokens(self) -> tuple[int, ...]:
        """Tokens for symbols that are not speech (suppressed when suppress_tokens has -1).

        Mirrors the rule openai-whisper uses; config.json's ``suppress_ids``
        carries the same list precomputed by the CTranslate2 converter, which
        is what the decoder normally uses.
        """
        symbols = list('"#()*+/:;<=>@[\\]^_`{|}~「」『』')
        symbols += "<< >> <<< >>> -- --- -( -[ (' (\" (( )) ((( ))) [[ ]] {{ }} ♪♪ ♪♪♪".split()
        miscellaneous = set("♩♪♫♬♭♮♯")
        result = {self.encode(" -")[0], self.encode(" '")[0]}
        for symbol in symbols + list(miscellaneous):
            for tokens in (self.encode(symbol), self.encode(" " + symbol)):
                if len(tokens) == 1 or symbol in miscellaneous:
                    result.add(tokens[0])
        return tuple(sorted(result))

    def split_to_word_tokens(self, tokens: list[int]) -> tuple[list[str], list[list[int]]]:
        """Group tokens into words (space-led for most languages, per character for CJK/Thai)."""
        if self.language in NO_SPACE_LANGUAGES:
            return self._split_unicode(tokens)
        words, groups = self._split_unicode(tokens)
        out_words: list[str] = []
        out_groups: list[list[int]] = []
        for word, group in zip(words, groups, strict=False):
            special = group[0] >= self.eot
            leading_space = word.startswith(" ")
            punct = word.strip() in string.punctuation
            if special or leading_space or punct or not out_words:
                out_words.append(word)
                out_groups.append(list(group))
            else:
                out_words[-1] += word
                out_groups[-1].extend(group)
        return out_words, out_groups

    def _split_unicode(self, tokens: list[int]) -> tuple[list[str], list[list[int]]]:
        """Split where the decoded text forms complete unicode characters."""
        words: list[str] = []
        groups: list[list[int]] = []
        current: list[int] = []
        full = self.decode_with_timestamps(tokens)
        offset = 0
        for token in tokens:
            current.append(token)
            text = self.decode_with_timestamps(current)
            if "\ufffd" not in text or full[offset + text.index("\ufffd")] == "\ufffd":
                words.append(text)
                groups.append(current)
                current = []
                offset += len(text)
        return words, groups
