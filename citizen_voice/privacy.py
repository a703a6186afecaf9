"""Personal data at the ingestion boundary: masks, keyed pseudonyms, text scrubbing, detection.

Plain Python + pyarrow (no Dagster, no dlt). Raw personal data must not pass this boundary except
encrypted into the restricted identities table.

Keys
----
* ``CV_PSEUDONYM_KEY``: HMAC-SHA256 key for pseudonyms, >= 32 bytes, given as hex or base64
  (optionally prefixed ``hex:`` / ``base64:``). Generate one with ``python -c "import secrets;
  print(secrets.token_hex(32))"``.
* ``CV_IDENTITY_KEY``: AES-256-GCM key (exactly 32 bytes, hex or base64) that encrypts the raw
  identifiers kept in the restricted schema.
* Sandbox/demo only: when a variable is unset, a random key is generated once into
  ``<data dir>/.secrets/pseudonym.key`` / ``identity.key`` (mode 0600, data dir =
  ``settings.warehouse_path().parent``, git-ignored) and reused, so pseudonyms stay stable across
  runs; a warning is logged (once per process and file). Set ``CV_REQUIRE_KEYS=1`` in real
  deployments to make a missing variable an error instead. Keys are never logged; only a short
  fingerprint (an HMAC of a constant, not the key) is, so operators can tell which key is in use.

Rotation
--------
There is no rotation function on purpose. Changing ``CV_PSEUDONYM_KEY`` changes every pseudonym:
repeat-caller and cross-source links between data loaded before and after the change are lost
(the same person gets a new ``ph_``/``id_``/``nm_`` value), and indicators such as 重复投诉率 computed
across the boundary are wrong. To keep the links, re-key: decrypt the restricted identities table
with the identity key, compute the new pseudonyms, and rewrite (or map old -> new in) every stored
pseudonym column in one migration. Rotating ``CV_IDENTITY_KEY`` means decrypting and re-encrypting
the identities table (rows carry ``key_id``, the fingerprint of the key that encrypted them).

Conventions (decisions)
-----------------------
* Phone mask ``138****5678`` (landline: area code + ``*`` + last 4, length kept, e.g. ``0755****5678``).
* ID number mask: first 6 + ``*`` + last 4, length kept (18 -> 6+8+4, old 15-digit -> 6+5+4).
* Name mask: first character + one ``*`` per remaining character (``张三`` -> ``张*``,
  ``欧阳娜娜`` -> ``欧***``): length-preserving, needs no compound-surname list, reveals at most the
  first character. A lone surname in text (``我姓张``, ``张先生``) becomes ``张*`` so readers see a mask.
* E-mail mask: first character of the local part + ``***`` + ``@domain``.
* Masks never raise: None -> None, "" -> "", unrecognised formats -> fully masked (``*`` per char).
* Pseudonyms: ``ph_``/``id_``/``nm_`` + 24 hex chars (96 bits) of HMAC-SHA256(key, kind NUL value)
  over the normalized value. Name pseudonyms link spellings, not people (many people are 张伟):
  use phone/ID pseudonyms to link repeat callers.
* Digit runs glued to ASCII letters (``GD20261001000123``, ``APP00000001``) are codes, not personal
  data; phones and IDs must stand alone (not inside a longer digit run, not after a letter).

Text scrubbing: what it catches and what it does not
----------------------------------------------------
Numbers are matched by shape (privacy first: any standalone 11-digit 1[3-9]... number is masked as
a phone, any standalone 18-character number as an ID; 15-digit numbers only with a plausible
YYMMDD). Names are matched (a) literally, from the record's own name fields, anywhere in the text,
and (b) after spoken triggers (我姓/来电人/本人/我叫/名叫/联系人/投诉人/举报人/反映人/姓名, and before
先生/女士/小姐) when the name starts with a common surname and is followed by punctuation, a space,
the end, 电话/手机/联系/身份证 or an honorific. "来电人张伟反映..." without a record name is therefore
NOT caught: allowing any verb after the name would mangle "来电人向社区反映". Sources whose text can
name callers should declare the name fields so (a) applies. IDs written with spaces inside free text
are not recognised. `find_personal_data` is the gate-side check for phones and IDs.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import logging
import os
import re
import secrets
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.compute as pc

if TYPE_CHECKING:
    from ingestion.registry import PersonalData

log = logging.getLogger(__name__)

PSEUDONYM_ENV = "CV_PSEUDONYM_KEY"
IDENTITY_ENV = "CV_IDENTITY_KEY"
REQUIRE_KEYS_ENV = "CV_REQUIRE_KEYS"
MIN_PSEUDONYM_KEY_BYTES = 32
IDENTITY_KEY_BYTES = 32
PSEUDONYM_PREFIX = {"phone": "ph_", "id_no": "id_", "name": "nm_"}
PSEUDONYM_HEX_CHARS = 24
IDENTITY_AAD = b"citizen-voice/identity/v1"
IDENTITIES_SCHEMA = pa.schema([("pseudonym", pa.string()), ("kind", pa.string()),
                               ("encrypted", pa.string()), ("key_id", pa.string())])


# ----------------------------------------------------------------------------------------------------
# keys


class KeyConfigError(ValueError):
    """A key is missing, malformed or too short. The message never contains key material."""


class IdentityDecryptionError(ValueError):
    """A token could not be decrypted: wrong key, or the token is corrupt or truncated."""


def _fingerprint(secret: bytes) -> str:
    return hmac.digest(secret, b"citizen-voice/key-fingerprint", "sha256").hex()[:12]


@dataclass(frozen=True, repr=False)
class _Key:
    secret: bytes
    source: str = "direct"  # "env:CV_PSEUDONYM_KEY", "file:/path" or "direct"

    def __post_init__(self):
        self._check()

    def _check(self) -> None:
        raise NotImplementedError

    @property
    def fingerprint(self) -> str:
        """Short public identifier of the key (safe to log, reveals nothing about the key)."""
        return _fingerprint(self.secret)

    @property
    def generated(self) -> bool:
        return self.source.startswith("file:")

    def __repr__(self) -> str:  # never show the secret
        return f"{type(self).__name__}(source={self.source!r}, fingerprint={self.fingerprint!r})"

    __str__ = __repr__


class PseudonymKey(_Key):
    """HMAC key for pseudonyms (>= 32 bytes)."""

    @classmethod
    def load(cls, **kwargs) -> PseudonymKey:
        """Same as load_pseudonym_key(**kwargs)."""
        return load_pseudonym_key(**kwargs)

    def _check(self) -> None:
        if not isinstance(self.secret, bytes) or len(self.secret) < MIN_PSEUDONYM_KEY_BYTES:
            raise KeyConfigError(f"pseudonym key must be at least {MIN_PSEUDONYM_KEY_BYTES} bytes")


class IdentityKey(_Key):
    """AES-256-GCM key for the restricted identities table (exactly 32 bytes)."""

    @classmethod
    def load(cls, **kwargs) -> IdentityKey:
        """Same as load_identity_key(**kwargs)."""
        return load_identity_key(**kwargs)

    def _check(self) -> None:
        if not isinstance(self.secret, bytes) or len(self.secret) != IDENTITY_KEY_BYTES:
            raise KeyConfigError(f"identity key must be exactly {IDENTITY_KEY_BYTES} bytes (AES-256)")


_HEX = re.compile(r"^(?:[0-9a-fA-F]{2})+$")


def parse_key_text(text: str, what: str = "key") -> bytes:
    """Decode key text: ``hex:...``, ``base64:...``, plain hex (even length), else base64 (std/url-safe)."""
    value = "".join(text.split())
    lowered = value.lower()
    try:
        if lowered.startswith("hex:"):
            return bytes.fromhex(value[4:])
        if lowered.startswith(("base64:", "b64:")):
            return _b64decode(value.split(":", 1)[1])
        if _HEX.match(value):
            return bytes.fromhex(value)
        return _b64decode(value)
    except (ValueError, binascii.Error):
        raise KeyConfigError(f"{what}: not valid hex or base64") from None


def _b64decode(value: str) -> bytes:
    padded = value + "=" * (-len(value) % 4)
    if "-" in value or "_" in value:
        return base64.urlsafe_b64decode(padded)
    return base64.b64decode(padded, validate=True)


def _data_dir() -> Path:
    from citizen_voice import settings

    return settings.warehouse_path().parent


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in ("1", "true", "yes", "on")


_warned_files: set[str] = set()


def _read_or_create_key_file(path: Path, nbytes: int, what: str) -> bytes:
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "w") as handle:
                handle.write(secrets.token_hex(nbytes) + "\n")
            try:
                os.link(tmp, path)  # atomic: the first writer wins, a file is never seen half-written
            except FileExistsError:
                pass
        finally:
            tmp.unlink(missing_ok=True)
    mode = path.stat().st_mode & 0o777
    if mode & 0o077:
        log.warning("key file %s had mode %o; restricting it to 0600", path, mode)
        path.chmod(0o600)
    try:
        return parse_key_text(path.read_text(encoding="ascii"), f"{what} file {path}")
    except UnicodeDecodeError:
        raise KeyConfigError(f"{what} file {path}: not valid hex or base64") from None


def _load(env_name: str, file_name: str, nbytes: int, what: str, environ, data_dir, allow_generated):
    environ = os.environ if environ is None else environ
    text = environ.get(env_name)
    if text and text.strip():
        return parse_key_text(text, f"environment variable {env_name}"), f"env:{env_name}"
    if allow_generated is None:
        allow_generated = not _truthy(environ.get(REQUIRE_KEYS_ENV))
    if not allow_generated:
        raise KeyConfigError(f"environment variable {env_name} is not set ({what}, hex or base64, "
                             f"{nbytes} bytes); generated keys are disabled by {REQUIRE_KEYS_ENV}")
    path = Path(data_dir if data_dir is not None else _data_dir()) / ".secrets" / file_name
    secret = _read_or_create_key_file(path, nbytes, what)
    return secret, f"file:{path}"


def _warn_generated(key: _Key, env_name: str) -> None:
    if key.source not in _warned_files:
        _warned_files.add(key.source)
        log.warning("%s is not set: using the generated sandbox/demo %s at %s (fingerprint %s). "
                    "Set %s for real data.", env_name, type(key).__name__, key.source[5:], key.fingerprint,
                    env_name)


def load_pseudonym_key(*, environ: dict | None = None, data_dir: str | Path | None = None,
                       allow_generated: bool | None = None) -> PseudonymKey:
    """The pseudonym key from ``CV_PSEUDONYM_KEY``, else (sandbox) the generated key file.

    `allow_generated` None means: allowed unless ``CV_REQUIRE_KEYS`` is truthy.
    Raises KeyConfigError for malformed/too short keys or when generation is disallowed.
    """
    secret, source = _load(PSEUDONYM_ENV, "pseudonym.key", MIN_PSEUDONYM_KEY_BYTES, "pseudonym key",
                           environ, data_dir, allow_generated)
    if len(secret) < MIN_PSEUDONYM_KEY_BYTES:
        where = source.replace("env:", "environment variable ").replace("file:", "key file ")
        raise KeyConfigError(f"{where}: pseudonym key is {len(secret)} bytes, needs at least "
                             f"{MIN_PSEUDONYM_KEY_BYTES}")
    key = PseudonymKey(secret, source)
    if key.generated:
        _warn_generated(key, PSEUDONYM_ENV)
    return key


def load_identity_key(*, environ: dict | None = None, data_dir: str | Path | None = None,
                      allow_generated: bool | None = None) -> IdentityKey:
    """The AES-256-GCM identity key from ``CV_IDENTITY_KEY``, else (sandbox) the generated key file."""
    secret, source = _load(IDENTITY_ENV, "identity.key", IDENTITY_KEY_BYTES, "identity key",
                           environ, data_dir, allow_generated)
    if len(secret) != IDENTITY_KEY_BYTES:
        where = source.replace("env:", "environment variable ").replace("file:", "key file ")
        raise KeyConfigError(f"{where}: identity key is {len(secret)} bytes, AES-256 needs exactly "
                             f"{IDENTITY_KEY_BYTES}")
    key = IdentityKey(secret, source)
    if key.generated:
        _warn_generated(key, IDENTITY_ENV)
    return key


# ----------------------------------------------------------------------------------------------------
# normalization and pseudonyms

# full-width ASCII (！..～) -> ASCII and the ideographic space -> space: 1:1, so text positions survive.
# Chinese punctuation (，：（）) is full-width too, so the fold is only done for texts with full-width
# digits, letters, ＋, － or ＠; the patterns accept （）and the ideographic space themselves.
_HALFWIDTH = {c: c - 0xFEE0 for c in range(0xFF01, 0xFF5F)} | {0x3000: 0x20}
_FULLWIDTH_CHAR = re.compile("[\uff10-\uff19\uff21-\uff3a\uff41-\uff5a\uff0b\uff0d\uff20]")
_NON_DIGIT = re.compile(r"[^0-9]")
_WHITESPACE = re.compile(r"\s+")


def _as_text(value: object) -> str | None:
    """A field value as text: None stays None; 1.3812345678e10 (spreadsheets) -> '13812345678'."""
    if value is None:
        return None
    if isinstance(value, float):
        if value != value:  # NaN
            return None
        if value.is_integer():
            return str(int(value))
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    return value if isinstance(value, str) else str(value)


def _phone_digits(text: str) -> str:
    digits = _NON_DIGIT.sub("", text.translate(_HALFWIDTH))
    if len(digits) == 15 and digits.startswith("0086"):
        digits = digits[4:]
    elif len(digits) == 13 and digits.startswith("861"):
        digits = digits[2:]
    elif 12 <= len(digits) <= 14 and digits.startswith("860"):  # +86 0755 12345678: keep the trunk 0
        digits = digits[2:]
    return digits


def normalize(value: object, kind: str) -> str | None:
    """The canonical form pseudonyms are computed over; None when there is nothing to identify.

    phone: digits only, +86/0086/86 country prefix dropped; id_no: no spaces, upper-case X;
    name: NFKC, no whitespace, case-folded.
    """
    text = _as_text(value)
    if text is None:
        return None
    if kind == "phone":
        out = _phone_digits(text)
    elif kind == "id_no":
        out = _WHITESPACE.sub("", text.translate(_HALFWIDTH)).upper().replace("×", "X")
    elif kind == "name":
        out = _WHITESPACE.sub("", unicodedata.normalize("NFKC", text)).casefold()
    else:
        raise ValueError(f"unknown personal data kind {kind!r} (one of {', '.join(PSEUDONYM_PREFIX)})")
    return out or None


def pseudonym(value: object, kind: str, key: PseudonymKey) -> str | None:
    """Keyed pseudonym: ``ph_``/``id_``/``nm_`` + 24 hex of HMAC-SHA256(key, kind NUL normalized value).

    Same person (same normalized value) -> same pseudonym across runs and sources; kinds never collide.
    None for None/empty values.
    """
    norm = normalize(value, kind)
    if norm is None:
        return None
    digest = hmac.digest(key.secret, kind.encode() + b"\x00" + norm.encode("utf-8"), "sha256")
    return PSEUDONYM_PREFIX[kind] + digest.hex()[:PSEUDONYM_HEX_CHARS]


# ----------------------------------------------------------------------------------------------------
# masks


def _full_mask(text: str) -> str:
    return "*" * len(text)


def _mask_phone_digits(digits: str) -> str | None:
    if len(digits) == 11 and digits[0] == "1":
        return digits[:3] + "****" + digits[7:]
    if digits.startswith("0") and 10 <= len(digits) <= 12:  # landline with area code
        area = 3 if digits[1] in "12" else 4
        rest = digits[area:]
        return digits[:area] + "*" * (len(rest) - 4) + rest[-4:]
    return None


def mask_phone(value: object) -> str | None:
    """``13812345678`` (also ``+86 138-1234-5678``) -> ``138****5678``; landline ``0755-12345678`` ->
    ``0755****5678``; anything else -> fully masked. Never raises."""
    text = _as_text(value)
    if text is None:
        return None
    text = text.strip()
    if not text:
        return ""
    masked = _mask_phone_digits(_phone_digits(text)) if len(text) <= 24 else None
    return masked or _full_mask(text)


def _mask_id(text: str) -> str | None:
    if len(text) == 18 and text[:17].isascii() and text[:17].isdigit() and text[17] in "0123456789X":
        return text[:6] + "*" * 8 + text[14:]
    if len(text) == 15 and text.isascii() and text.isdigit():
        return text[:6] + "*" * 5 + text[11:]
    return None


def mask_id_no(value: object) -> str | None:
    """18-digit ``440308199001011234`` -> ``440308********1234`` (15-digit: 6 + 5* + 4); else fully masked."""
    text = _as_text(value)
    if text is None:
        return None
    text = text.strip()
    if not text:
        return ""
    norm = _WHITESPACE.sub("", text.translate(_HALFWIDTH)).upper().replace("×", "X")
    return _mask_id(norm) or _full_mask(text)


def mask_name(value: object) -> str | None:
    """First character + one ``*`` per remaining character: ``张三`` -> ``张*``, ``欧阳娜娜`` -> ``欧***``.

    A single character is fully masked (``*``): it is not a recognisable name.
    """
    text = _as_text(value)
    if text is None:
        return None
    text = _WHITESPACE.sub("", text)
    if len(text) < 2:
        return _full_mask(text)
    return text[0] + "*" * (len(text) - 1)


def mask_email(value: object) -> str | None:
    """``zhang.wei@example.com`` -> ``z***@example.com``; else fully masked."""
    text = _as_text(value)
    if text is None:
        return None
    text = text.strip()
    local, at, domain = text.rpartition("@")
    if not at or not local or not domain:
        return _full_mask(text)
    return local[0] + "***@" + domain


MASKS = {"phone": mask_phone, "id_no": mask_id_no, "name": mask_name}


def mask(value: object, kind: str) -> str | None:
    """Mask by kind (name, phone, id_no)."""
    return MASKS[kind](value)


# ----------------------------------------------------------------------------------------------------
# text scrubbing

# Surnames that may open a name after a spoken trigger (来电人/本人/我叫...). Characters that are mainly
# function words or everyday nouns after 本人/联系人 (于 is kept: it is common; see _NOT_NAMES) are left out.
_SINGLE_SURNAMES = (
    "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈"
    "姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝龚邵万钱严覃武戴莫孔向汤"
    "傅康施牛洪葛文童颜梅盛邢骆常乔庞樊兰殷倪谷邬闵左詹柴祝阮翟鲁苗温季甘舒岳齐聂欧饶关凌霍艾柯裴申卓蓝"
    "麦焦涂伍巫尚穆鲍游宁易晏桂褚俞鄢冉耿祁景项廉柏栾宫仇丛储晋毕鞠蒲隋喻郎池薄缪宗庄丰邰卜姬岑纪"
)
_COMPOUND_SURNAMES = ("欧阳", "司马", "上官", "诸葛", "东方", "皇甫", "尉迟", "公孙", "慕容", "令狐", "长孙",
                      "宇文", "司徒", "夏侯", "轩辕", "端木", "独孤", "南宫", "西门", "百里", "呼延", "澹台")
_SURNAME = "(?:" + "|".join(_COMPOUND_SURNAMES) + "|[" + "".join(sorted(set(_SINGLE_SURNAMES))) + "])"
# characters that do not continue a given name (function words, verbs of reporting)
_GIVEN = "(?:(?!先生|女士|小姐|[的了在是和与及等也都已被把将对从向就还又再很说称讲问])[\u4e00-\u9fff])"
_HONORIFIC = "(?:先生|女士|小姐)"
_DELIM_CHARS = "，,。.；;、：:\\s（）()！!？?“”\"'【】\\[\\]/"
_AFTER_NAME = f"(?=[{_DELIM_CHARS}]|电话|手机|联系|身份证|{_HONORIFIC}|$)"
_TRIGGERS = ("来电人", "本人", "我叫", "名叫", "联系人", "投诉人", "举报人", "反映人", "姓名")
# words (or their first two characters) that look like surname + given name after a trigger
# ("本人白天，", "本人江苏人，")
_NOT_NAMES = frozenset(
    "白天 方面 方便 方式 方向 方法 方案 任何 任务 高度 高兴 高层 万分 万元 金额 石头 夏天 夏季 田地 马上 马路 "
    "周末 周边 周围 程序 程度 严重 于是 于此 曾经 余额 许多 许可 杜绝 范围 顾客 顾问 付款 付费 陆续 谢谢 郑重 "
    "何时 何处 胡同 黎明 段落 江边 龙头 毛病 钱款 史上 常年 常住 向前 温度 齐全 宁愿 申请 申报 关于 关注 关心 "
    "同意 项目 柏油 兰花 宗旨 纪律 庄稼 易于 游戏 尚未 晋升 毕业 乔迁 康复 文件 文明 童年 颜色 梅雨 盛夏 陈述 申诉 "
    "孙子 孙女 何况 江苏 江西 宁夏 宁波 宁德 温州 苏州 常州 金华 贺州 梅州 徐州 武汉 黄石 黄冈 黄山 秦皇 邢台 齐齐 "
    "池州 景德 龙岩 焦作 许昌 周口 兰州 甘肃".split())

# Each regex starts with literals or one character class, so the engine skips ahead in C.
_XING_RE = re.compile(f"姓(?P<surname>{_SURNAME})(?![*＊])")  # "我姓张" (the lead is checked in _xing_repl)
_XING_LEADS = ("我", "本人", "免贵", "来电人", "联系人", "他", "她", "其")
_TRIGGER_RE = re.compile(  # "来电人张伟，", "本人：王芳，", "联系人为李四电话"
    f"(?P<trig>(?:{'|'.join(_TRIGGERS)})[：: ]?[是为]?)(?P<name>{_SURNAME}{_GIVEN}{{0,2}}){_AFTER_NAME}")
_HONORIFIC_RE = re.compile(
    f"(?:(?<=[{_DELIM_CHARS}])|^)(?P<hname>{_SURNAME}{_GIVEN}{{1,2}})(?={_HONORIFIC})"  # "，张伟先生"
    f"|(?P<hsurname>{_SURNAME})(?={_HONORIFIC})"  # "王女士"
)


def _surname_mask(surname: str) -> str:
    return surname[0] + "*" * max(1, len(surname) - 1)


def _xing_repl(m: re.Match) -> str:
    if not m.string.endswith(_XING_LEADS, 0, m.start()):
        return m.group(0)  # "百姓安居": not a surname
    return "姓" + _surname_mask(m.group("surname"))


def _trigger_repl(m: re.Match) -> str:
    name = m.group("name")
    if name[:2] in _NOT_NAMES or name in _NOT_NAMES:
        return m.group(0)
    return m.group("trig") + (_surname_mask(name) if len(name) == 1 else mask_name(name))


def _honorific_repl(m: re.Match) -> str:
    if m.lastgroup == "hname":
        return mask_name(m.group("hname"))
    return _surname_mask(m.group("hsurname"))


# Digit patterns run on the half-width view of the text (full-width digits are folded 1:1). A match
# must not follow a digit or an ASCII letter (codes such as GD20261001000123, APP00000001) and must
# not be followed by a digit: a phone or ID is never part of a longer number.
_SEP = r"[ \-\u00a0\u3000]?"
_PHONE = (r"(?:(?:\+|00)?86" + _SEP + r"|[(（]\+?86[)）]" + _SEP + r")?1[3-9][0-9]" + _SEP + r"[0-9]{4}" + _SEP
          + r"[0-9]{4}")
_LANDLINE = r"(?:[(（]0[0-9]{2,3}[)）]" + _SEP + r"|0[0-9]{2,3}" + _SEP + r")[0-9]{7,8}"
_NUMERIC_RE = re.compile(
    r"(?<![0-9A-Za-z])(?:"
    r"(?P<id18>[0-9]{17}[0-9Xx×])(?![0-9A-Za-z])"
    r"|(?P<id15>[0-9]{8}(?:0[1-9]|1[0-2])(?:0[1-9]|[12][0-9]|3[01])[0-9]{3})(?![0-9A-Za-z])"
    r"|(?P<phone>" + _PHONE + r")(?![0-9])"
    r"|(?P<landline>" + _LANDLINE + r")(?![0-9])"
    r")"
)
# Candidate runs: every match above lies inside one (>= 10 characters of digits and separators).
# Searching candidates first is much faster than running _NUMERIC_RE over all of the text.
# They start where a match may start (not after a digit/letter) and end with 4 digits (+ X); dates
# (2026-10-01) and codes (GD20261001000123) are not candidates.
_CANDIDATE_RE = re.compile(r"[0-9+(（](?<![0-9A-Za-z].)[0-9+()（）\- \u00a0\u3000]{5,}[0-9]{4}[Xx×]?")
_EMAIL_RE = re.compile(r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,}")


def _numeric_repl(m: re.Match) -> str:
    group = m.lastgroup
    text = m.group(group)
    if group == "phone":
        return _mask_phone_digits(_phone_digits(text)) or _full_mask(text)
    if group == "landline":
        return _mask_phone_digits(_NON_DIGIT.sub("", text)) or _full_mask(text)
    return _mask_id(text.upper().replace("×", "X")) or _full_mask(text)


def _email_repl(m: re.Match) -> str:
    return mask_email(m.group(0))


def _numeric_matches(view: str):
    """_NUMERIC_RE matches in `view`, searched inside candidate runs only."""
    size = len(view)
    for candidate in _CANDIDATE_RE.finditer(view):
        start, end = candidate.span()
        # lookbehind sees view[start - 1]; endpos end + 1 lets the lookahead see the character after
        yield from _NUMERIC_RE.finditer(view, start, min(end + 1, size))


def _splice(text: str, matches, repl) -> str:
    """Replace match spans of `text` by repl(match); matches may come from a same-length view of it."""
    out, last = [], 0
    for m in matches:
        out.append(text[last:m.start()])
        out.append(repl(m))
        last = m.end()
    if not out:
        return text
    out.append(text[last:])
    return "".join(out)


_NAME_STOPWORDS = frozenset(("先生", "女士", "小姐", "匿名", "市民", "群众", "来电人", "未知", "不详", "保密",
                             "业主", "居民", "师傅", "老师", "同志", "无名", "客户", "用户"))


@lru_cache(maxsize=65536)
def _known_name(name: str) -> tuple[str, str] | None:
    """(text to find, its mask) for a record's own name, or None when it is unusable as a literal."""
    name = _WHITESPACE.sub("", name)
    for suffix in ("先生", "女士", "小姐"):
        if name.endswith(suffix) and len(name) > len(suffix):
            name = name[: -len(suffix)]
    if "*" in name or "＊" in name or name in _NAME_STOPWORDS:
        return None
    has_cjk = any("\u4e00" <= ch <= "\u9fff" for ch in name)
    if len(name) < (2 if has_cjk else 4):
        return None
    return name, mask_name(name)


@lru_cache(maxsize=65536)
def _known_literal(value: str, kind: str) -> tuple[str, str] | None:
    """(text to find, its mask) for a record's own phone/ID value, or None when too short to be one."""
    value = value.strip()
    if len(_NON_DIGIT.sub("", value.translate(_HALFWIDTH))) < 7:
        return None
    return value, mask(value, kind)


def _replace_standalone(text: str, value: str, masked: str) -> str:
    """Replace `value` where it is not glued to a digit/letter before it or a digit after it."""
    out, last, start = [], 0, text.find(value)
    while start >= 0:
        end = start + len(value)
        before = text[start - 1] if start else ""
        after = text[end] if end < len(text) else ""
        if not (before.isascii() and before.isalnum()) and not (after.isascii() and after.isdigit()):
            out.append(text[last:start])
            out.append(masked)
            last = end
        start = text.find(value, end if last == end else start + 1)
    if not out:
        return text
    out.append(text[last:])
    return "".join(out)


def scrub_text(text: str | None, known_names: Iterable[str | None] = (), *,
               known_phones: Iterable[object] = (), known_ids: Iterable[object] = ()) -> str | None:
    """Replace personal data inside free Chinese text by its mask.

    Mobile numbers (also spaced/dashed, +86), landlines, 18/15-digit ID numbers, e-mail addresses;
    the record's own names (`known_names`) wherever they appear; names in spoken patterns
    (我姓X, 来电人X, 本人X, 我叫X, 联系人X, X先生/X女士/X小姐). `known_phones`/`known_ids` are the record's
    own values, replaced literally too (catches formats the patterns do not know). Text without
    personal data is returned unchanged (the same object). None/non-text: None stays None.
    """
    if not text:
        return text
    if not isinstance(text, str):
        text = _as_text(text)
    for raw in known_names:
        if raw:
            if not isinstance(raw, str):
                raw = str(raw)
            head = raw.strip()[:2]
            if head in text or " " in head:  # cheap pre-check before preparing the name
                known = _known_name(raw)
                if known is not None and known[0] in text:
                    text = text.replace(*known)
    for kind, values in (("phone", known_phones), ("id_no", known_ids)):
        for raw in values:
            if raw and not isinstance(raw, str):
                raw = _as_text(raw)
            if raw and raw.strip() in text:
                known = _known_literal(raw, kind)
                if known is not None:
                    text = _replace_standalone(text, *known)
    fullwidth = _FULLWIDTH_CHAR.search(text) is not None
    view = text.translate(_HALFWIDTH) if fullwidth else text
    if _CANDIDATE_RE.search(view):
        text = _splice(text, _numeric_matches(view), _numeric_repl)
    if "@" in view:
        view = text.translate(_HALFWIDTH) if fullwidth else text
        text = _splice(text, _EMAIL_RE.finditer(view), _email_repl)
    if "姓" in text:
        text = _XING_RE.sub(_xing_repl, text)
    text = _TRIGGER_RE.sub(_trigger_repl, text)
    if "先生" in text or "女士" in text or "小姐" in text:
        text = _HONORIFIC_RE.sub(_honorific_repl, text)
    return text


# ----------------------------------------------------------------------------------------------------
# detection for publish gates


@dataclass(frozen=True)
class Finding:
    kind: str  # "phone" or "id_no"
    sample: str  # the match, masked (safe to log and show)
    start: int  # character offsets in the text
    end: int


_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_ID_CHECK = "10X98765432"


def id_checksum_ok(id_no: str) -> bool:
    """GB 11643 check digit of an 18-character ID number (upper-case X)."""
    if len(id_no) != 18 or not id_no[:17].isascii() or not id_no[:17].isdigit():
        return False
    return _ID_CHECK[sum(int(d) * w for d, w in zip(id_no, _ID_WEIGHTS, strict=False)) % 11] == id_no[17]


def _plausible_birth(id_no: str) -> bool:
    if len(id_no) == 18:
        year, month, day = int(id_no[6:10]), int(id_no[10:12]), int(id_no[12:14])
        if not 1880 <= year <= 2100:
            return False
    else:
        month, day = int(id_no[8:10]), int(id_no[10:12])
    return 1 <= month <= 12 and 1 <= day <= 31


def find_personal_data(text: str | None) -> list[Finding]:
    """Phones (mobile, landline) and ID numbers in `text`, with masked samples and positions.

    18-digit IDs count only with a valid check digit and birth date; 15-digit old IDs need a plausible
    birth date. Masked values (138****5678) are not findings.
    """
    if not text or not isinstance(text, str):
        return []
    view = text.translate(_HALFWIDTH) if _FULLWIDTH_CHAR.search(text) else text
    findings = []
    for m in _numeric_matches(view):
        group = m.lastgroup
        value = m.group(group)
        if group in ("id18", "id15"):
            norm = value.upper().replace("×", "X")
            if (group == "id18" and not id_checksum_ok(norm)) or not _plausible_birth(norm):
                continue
            findings.append(Finding("id_no", _mask_id(norm) or _full_mask(value), m.start(), m.end()))
        else:
            findings.append(Finding("phone", _numeric_repl(m), m.start(), m.end()))
    return findings


# ----------------------------------------------------------------------------------------------------
# Arrow tables


@lru_cache(maxsize=8)
def _aesgcm(secret: bytes):
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    return AESGCM(secret)


def encrypt_identity(value: str, identity_key: IdentityKey) -> str:
    """AES-256-GCM: base64(nonce(12) || ciphertext+tag). A fresh random nonce per call."""
    nonce = os.urandom(12)
    sealed = _aesgcm(identity_key.secret).encrypt(nonce, value.encode("utf-8"), IDENTITY_AAD)
    return base64.b64encode(nonce + sealed).decode("ascii")


def decrypt_identity(token: str, identity_key: IdentityKey) -> str:
    """Inverse of encrypt_identity; IdentityDecryptionError for a wrong key or a damaged token."""
    from cryptography.exceptions import InvalidTag

    try:
        raw = base64.b64decode(token, validate=True)
        if len(raw) < 12 + 16:
            raise ValueError("too short")
        return _aesgcm(identity_key.secret).decrypt(raw[:12], raw[12:], IDENTITY_AAD).decode("utf-8")
    except (InvalidTag, ValueError, binascii.Error, TypeError):
        raise IdentityDecryptionError("identity token cannot be decrypted with this key "
                                      "(wrong key, or a damaged token)") from None


@dataclass
class ProtectedTable:
    table: pa.Table  # personal fields masked, F_pseudonym columns added, text fields scrubbed
    identities: pa.Table | None = None  # pseudonym, kind, encrypted, key_id (restricted schema)
    missing_fields: list[str] = field(default_factory=list)  # declared fields absent from the table
    scrubbed_texts: int = 0  # text values changed by scrubbing


def _as_string_array(column: pa.ChunkedArray) -> pa.Array:
    arr = column.combine_chunks() if column.num_chunks != 1 else column.chunk(0)
    if pa.types.is_dictionary(arr.type):
        arr = arr.dictionary_decode()
    if pa.types.is_string(arr.type):
        return arr
    if pa.types.is_large_string(arr.type) or pa.types.is_null(arr.type) or pa.types.is_integer(arr.type):
        return pc.cast(arr, pa.string())
    return pa.array([_as_text(v) for v in arr.to_pylist()], type=pa.string())


def protect_table(table: pa.Table, personal: PersonalData, key: PseudonymKey,
                  identity_key: IdentityKey | None = None) -> ProtectedTable:
    """Mask personal fields, add ``<field>_pseudonym`` columns, scrub text fields.

    `personal` is an ingestion.registry.PersonalData (``fields``: column -> name/phone/id_no,
    ``text_fields``). Pseudonyms and masks are computed once per distinct value (dictionary
    encoding). Text fields are scrubbed with the row's own names (and phone/ID values) as known
    literals. With `identity_key`, ``identities`` holds one row per distinct pseudonym with the
    AES-GCM encrypted original value. Declared columns missing from the table are skipped and
    listed in ``missing_fields``. Null-safe; the input table is not modified.
    """
    fields: dict[str, str] = dict(personal.fields)
    text_fields: Sequence[str] = list(personal.text_fields)
    names = set(table.column_names)
    missing = [c for c in [*fields, *text_fields] if c not in names]
    for column in fields:
        if f"{column}_pseudonym" in names:
            raise ValueError(f"column {column}_pseudonym already exists: the table looks protected already")
    out = table
    raw_by_kind: dict[str, list[pa.Array]] = {"name": [], "phone": [], "id_no": []}
    identity_rows: dict[str, tuple[str, str]] = {}
    for column, kind in fields.items():
        if column not in names:
            continue
        arr = _as_string_array(table.column(column))
        raw_by_kind[kind].append(arr)
        encoded = pc.dictionary_encode(arr)
        distinct = encoded.dictionary.to_pylist()
        masked = pa.array([mask(v, kind) for v in distinct], type=pa.string())
        pseudos = [pseudonym(v, kind, key) for v in distinct]
        if identity_key is not None:
            for value, pseudo in zip(distinct, pseudos, strict=True):
                if pseudo is not None and pseudo not in identity_rows:
                    identity_rows[pseudo] = (kind, value.strip())
        index = out.column_names.index(column)
        out = out.set_column(index, pa.field(column, pa.string()), pc.take(masked, encoded.indices))
        out = out.add_column(index + 1, pa.field(f"{column}_pseudonym", pa.string()),
                             pc.take(pa.array(pseudos, type=pa.string()), encoded.indices))
    scrubbed = 0
    present_text = [c for c in text_fields if c in names and c not in fields]  # a field is masked already
    if present_text:
        row_names = _row_values(raw_by_kind["name"], table.num_rows)
        row_phones = _row_values(raw_by_kind["phone"], table.num_rows)
        row_ids = _row_values(raw_by_kind["id_no"], table.num_rows)
        for column in present_text:
            values = _as_string_array(table.column(column)).to_pylist()
            result = []
            for i, text in enumerate(values):
                if text:
                    new = scrub_text(text, row_names[i], known_phones=row_phones[i], known_ids=row_ids[i])
                    if new is not text:
                        scrubbed += new != text
                    text = new
                result.append(text)
            index = out.column_names.index(column)
            out = out.set_column(index, pa.field(column, pa.string()), pa.array(result, type=pa.string()))
    identities = None
    if identity_key is not None:
        rows = [(p, kind, encrypt_identity(value, identity_key)) for p, (kind, value) in identity_rows.items()]
        identities = pa.table({"pseudonym": pa.array([r[0] for r in rows], pa.string()),
                               "kind": pa.array([r[1] for r in rows], pa.string()),
                               "encrypted": pa.array([r[2] for r in rows], pa.string()),
                               "key_id": pa.array([identity_key.fingerprint] * len(rows), pa.string())},
                              schema=IDENTITIES_SCHEMA)
    return ProtectedTable(out, identities, missing, scrubbed)


def _row_values(arrays: list[pa.Array], n: int) -> list[tuple]:
    """Per row, the non-null values of several columns (empty tuples when there are none)."""
    if not arrays:
        return [()] * n
    if len(arrays) == 1:
        return [(v,) if v else () for v in arrays[0].to_pylist()]
    return [tuple(v for v in row if v) for row in zip(*(a.to_pylist() for a in arrays), strict=True)]


# ----------------------------------------------------------------------------------------------------
# benchmark: python -m citizen_voice.privacy [n_texts] [n_rows]


def _sandbox_texts(n: int, seed: int = 7, pii_share: float = 0.06) -> tuple[list[str], list]:
    """n sandbox-style texts (content, ~150 chars with padding) and their callers."""
    import random

    from simulator import city
    from simulator.people import make_citizen
    from simulator.text import render

    rng = random.Random(seed)
    streets = city.all_streets()
    types = [c for c, _, _, _ in city.DEMAND_TYPES]
    texts, callers = [], []
    for _ in range(n):
        district, street = rng.choice(streets)
        community = rng.choice(street.communities)
        caller = make_citizen(rng, "440308")
        dept = rng.choice(city.DEPARTMENTS)
        _, body = render(rng, rng.choice(city.CATEGORIES), rng.choice(types), f"{street.name}{community.name}",
                         street.name, community.name, dept.name, caller, rng.random() < pii_share)
        texts.append(body)
        callers.append(caller)
    return texts, callers


def _benchmark(n_texts: int = 200_000, n_rows: int = 100_000) -> None:  # pragma: no cover
    import time

    texts, callers = _sandbox_texts(n_texts)
    pad = "经现场核实，该小区3号楼2单元门前路面于2026-10-01出现塌陷，工单GD20261001000123已转办。" * 3
    texts = [(t + pad)[:150] if len(t) < 150 else t[:150] for t in texts]
    for label, sample, names in (
        ("no known names", texts, None),
        ("with the caller's name", texts, [(c.name,) for c in callers]),
        ("all texts with PII", [f"来电人{c.name}，电话{c.phone}，身份证号{c.id_no}，" + t[:100]
                                for t, c in zip(texts, callers, strict=True)], [(c.name,) for c in callers]),
    ):
        started = time.perf_counter()
        if names is None:
            for text in sample:
                scrub_text(text)
        else:
            for text, known in zip(sample, names, strict=True):
                scrub_text(text, known)
        elapsed = time.perf_counter() - started
        chars = sum(map(len, sample)) / len(sample)
        print(f"scrub_text, {label}: {len(sample) / elapsed:,.0f} texts/s (mean {chars:.0f} chars)")

    from ingestion.registry import PersonalData

    rows = n_rows
    table = pa.table({
        "order_no": [f"GD20261001{i:06d}" for i in range(rows)],
        "caller_name": [callers[i % len(callers)].name for i in range(rows)],
        "caller_phone": [callers[i % len(callers)].phone for i in range(rows)],
        "caller_id_no": [callers[i % len(callers)].id_no for i in range(rows)],
        "title": [texts[(i * 7) % len(texts)][:30] for i in range(rows)],
        "content": [texts[i % len(texts)] for i in range(rows)],
    })
    personal = PersonalData(fields={"caller_name": "name", "caller_phone": "phone", "caller_id_no": "id_no"},
                            text_fields=["title", "content"])
    key = PseudonymKey(b"k" * 32)
    ident = IdentityKey(b"i" * 32)
    for label, identity_key in (("without identities", None), ("with identities", ident)):
        started = time.perf_counter()
        result = protect_table(table, personal, key, identity_key)
        elapsed = time.perf_counter() - started
        extra = f", {result.identities.num_rows:,} identities" if result.identities is not None else ""
        print(f"protect_table {rows:,} rows x 3 personal + 2 text fields, {label}: "
              f"{rows / elapsed:,.0f} rows/s ({elapsed:.2f} s{extra})")


if __name__ == "__main__":  # pragma: no cover
    import sys

    _benchmark(*(int(a) for a in sys.argv[1:3]))
