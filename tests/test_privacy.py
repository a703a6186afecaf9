"""citizen_voice.privacy: masks, pseudonyms, text scrubbing, Arrow protection, keys, detection."""

from __future__ import annotations

import base64
import logging
import random
import re
import stat

import pyarrow as pa
import pytest

from citizen_voice.privacy import (
    Finding,
    IdentityDecryptionError,
    IdentityKey,
    KeyConfigError,
    PseudonymKey,
    decrypt_identity,
    encrypt_identity,
    find_personal_data,
    id_checksum_ok,
    load_identity_key,
    load_pseudonym_key,
    mask_email,
    mask_id_no,
    mask_name,
    mask_phone,
    normalize,
    protect_table,
    pseudonym,
    scrub_text,
)
from ingestion.registry import PersonalData
from simulator import city
from simulator.people import make_citizen
from simulator.text import render, reply_text

KEY = PseudonymKey(bytes(range(32)))
OTHER_KEY = PseudonymKey(bytes(range(1, 33)))
IDENTITY = IdentityKey(b"\x07" * 32)
VALID_ID = "440308199001011239"  # valid GB 11643 check digit
assert id_checksum_ok(VALID_ID)


# -- masks -------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("value", "expected"), [
    ("13812345678", "138****5678"),
    (" 138 1234 5678 ", "138****5678"),
    ("+86 138-1234-5678", "138****5678"),
    ("8613812345678", "138****5678"),
    ("008613812345678", "138****5678"),
    ("１３８１２３４５６７８", "138****5678"),
    (13812345678, "138****5678"),  # spreadsheet cells
    (13812345678.0, "138****5678"),
    ("0755-12345678", "0755****5678"),
    ("010-1234567", "010***4567"),
    ("12345", "*****"),
    ("not a phone", "***********"),
    ("", ""),
    (None, None),
    (float("nan"), None),
])
def test_mask_phone(value, expected):
    assert mask_phone(value) == expected


@pytest.mark.parametrize(("value", "expected"), [
    ("440308199001011234", "440308********1234"),
    ("44030819900101123x", "440308********123X"),
    (" 440308 19900101 1234 ", "440308********1234"),
    ("440308900101123", "440308*****1123"),  # old 15-digit ID
    ("4403081990", "**********"),
    ("abc", "***"),
    ("", ""),
    (None, None),
])
def test_mask_id_no(value, expected):
    assert mask_id_no(value) == expected


@pytest.mark.parametrize(("value", "expected"), [
    ("张三", "张*"), ("张伟伟", "张**"), ("欧阳娜娜", "欧***"), (" 王 芳 ", "王*"), ("买买提·艾力", "买*****"),
    ("John Smith", "J********"), ("张", "*"), ("", ""), (None, None), ("13812345678", "1**********"),
])
def test_mask_name(value, expected):
    assert mask_name(value) == expected


def test_mask_email_and_bad_input_never_raises():
    assert mask_email("zhang.wei@example.com") == "z***@example.com"
    assert mask_email("no-at-sign") == "**********"
    for fn in (mask_phone, mask_id_no, mask_name, mask_email):
        for bad in (object(), b"\xff\xfe", 12.5, -1, [1, 2], "\x00", "*" * 30):
            assert isinstance(fn(bad), str)


# -- pseudonyms --------------------------------------------------------------------------------------

def test_pseudonym_format_and_stability():
    first = pseudonym("13812345678", "phone", KEY)
    assert re.fullmatch(r"ph_[0-9a-f]{24}", first)
    assert pseudonym("13812345678", "phone", PseudonymKey(bytes(range(32)))) == first  # same key, new object
    assert re.fullmatch(r"id_[0-9a-f]{24}", pseudonym(VALID_ID, "id_no", KEY))
    assert re.fullmatch(r"nm_[0-9a-f]{24}", pseudonym("张伟", "name", KEY))


def test_pseudonym_normalization():
    phone = pseudonym("13812345678", "phone", KEY)
    for variant in (" 138 1234 5678", "+86 138-1234-5678", "8613812345678", "0086 13812345678",
                    "１３８１２３４５６７８", 13812345678, 13812345678.0):
        assert pseudonym(variant, "phone", KEY) == phone, variant
    assert pseudonym("44030819900101123x", "id_no", KEY) == pseudonym(" 44030819900101123X", "id_no", KEY)
    assert pseudonym(" 张 伟 ", "name", KEY) == pseudonym("张伟", "name", KEY)
    assert pseudonym("John SMITH", "name", KEY) == pseudonym("john smith", "name", KEY)
    assert normalize("+86 138-1234-5678", "phone") == "13812345678"


def test_pseudonym_kind_separated_and_key_dependent():
    value = "13812345678"
    assert pseudonym(value, "phone", KEY)[3:] != pseudonym(value, "name", KEY)[3:]
    assert pseudonym(value, "phone", KEY)[3:] != pseudonym(value, "id_no", KEY)[3:]
    assert pseudonym(value, "phone", KEY) != pseudonym(value, "phone", OTHER_KEY)
    assert pseudonym("13812345678", "phone", KEY) != pseudonym("13812345679", "phone", KEY)


def test_pseudonym_empty_and_unknown_kind():
    assert pseudonym(None, "phone", KEY) is None
    assert pseudonym("  ", "name", KEY) is None
    assert pseudonym("", "id_no", KEY) is None
    with pytest.raises(ValueError, match="unknown personal data kind"):
        pseudonym("x", "email_address", KEY)


# -- scrub_text ----------------------------------------------------------------------------------------

def _render(seed: int, pii: bool):
    rng = random.Random(seed)
    district = rng.choice(city.DISTRICTS)
    street = rng.choice(district.streets)
    community = rng.choice(street.communities)
    caller = make_citizen(rng, district.code)
    demand = rng.choice([code for code, *_ in city.DEMAND_TYPES if code != "WX"])
    dept = rng.choice(city.DEPARTMENTS).name
    title, body = render(rng, rng.choice(city.CATEGORIES), demand, f"{street.name}{community.name}", street.name,
                         community.name, dept, caller, pii)
    return title, body, caller


@pytest.mark.parametrize("with_names", [True, False])
def test_scrub_removes_the_callers_data_from_sandbox_texts(with_names):
    for seed in range(3000):
        title, body, caller = _render(seed, pii=True)
        known = [caller.name] if with_names else []
        for text in (title, body):
            out = scrub_text(text, known)
            assert caller.phone not in out, (seed, text, out)
            assert caller.id_no not in out, (seed, text, out)
            assert caller.name not in out, (seed, text, out)
            assert caller.phone[-4:] in out or caller.phone not in text  # masked, not deleted
            if f"我姓{caller.name[0]}" in text:
                assert f"我姓{caller.name[0]}*" in out


def test_scrub_masks_in_place():
    assert scrub_text("我姓张，联系电话13812345678。") == "我姓张*，联系电话138****5678。"
    assert scrub_text("来电人张伟，电话13812345678，") == "来电人张*，电话138****5678，"
    assert scrub_text("本人王芳，身份证号370902198407256429，") == "本人王*，身份证号370902********6429，"
    assert scrub_text("请回电13812345678。") == "请回电138****5678。"


def test_scrub_leaves_text_without_personal_data_unchanged():
    for seed in range(3000):
        title, body, _ = _render(seed, pii=False)
        for text in (title, body):
            assert scrub_text(text) == text, (seed, text)
    rng = random.Random(1)
    for dept in city.DEPARTMENTS:
        for resolved in (True, False):
            text = reply_text(rng, dept.name, resolved)
            assert scrub_text(text) == text
    for text in ("来电人反映，小区路灯不亮。", "来电人咨询公积金办理流程。", "来电人未说明诉求即挂断。",
                 "已联系来电人，来电人表示认可。", "本人认为处理不合理。", "老百姓安居乐业", "本人白天上班，晚上才在家。",
                 "来电人向社区反映过多次。"):
        assert scrub_text(text) == text


def test_scrub_leaves_sandbox_event_notes_and_order_texts_unchanged():
    from simulator.generator import SandboxParams, generate

    truth = generate(SandboxParams(days=15, orders_per_day=40, seed=11))
    for event in truth.events:
        if event.note:
            assert scrub_text(event.note) == event.note
    with_pii = 0
    for order in truth.orders:
        for text in (order.title, order.content):
            out = scrub_text(text)
            if order.pii_in_text:
                assert order.caller.phone not in out and order.caller.id_no not in out
            else:
                assert out == text, text
        with_pii += order.pii_in_text
    assert with_pii > 0


@pytest.mark.parametrize("text", [
    "工单GD20261001000123已于2026-10-01办结。", "并入工单GD20261001000123", "GD20261013812345678",
    "于2026年10月1日10:30到场", "金额15000元，已退回1380元", "中山区解放路12号3号楼2单元501室",
    "办件ZJ20260000123，APP00000001，GD-WO-000001", "拨打12345或95598，客服400-800-1234",
    "时间2026-10-01 08:30:00至2026-10-02", "编号20261001000123", "共计12,345,678元", "版本v1.3812345678",
])
def test_scrub_leaves_codes_dates_and_amounts(text):
    assert scrub_text(text) == text
    assert find_personal_data(text) == []


@pytest.mark.parametrize(("text", "expected"), [
    ("电话138 1234 5678", "电话138****5678"),
    ("电话138-1234-5678。", "电话138****5678。"),
    ("手机+86 13812345678", "手机138****5678"),
    ("手机(+86)13812345678", "手机138****5678"),
    ("手机：8613812345678", "手机：138****5678"),
    ("电话１３８１２３４５６７８，", "电话138****5678，"),
    ("座机0755-12345678", "座机0755****5678"),
    ("座机（0755）12345678", "座机0755****5678"),
    ("座机010 12345678", "座机010****5678"),
    ("身份证44030819900101123X", "身份证440308********123X"),
    ("身份证44030819900101123x号", "身份证440308********123X号"),
    ("老身份证440308900101123", "老身份证440308*****1123"),
    ("邮箱zhang.wei@example.com，", "邮箱z***@example.com，"),
    ("邮箱ｚｈａｎｇ＠ｅｘａｍｐｌｅ．ｃｏｍ", "邮箱z***@example.com"),
    ("两个号码13812345678、13912345678", "两个号码138****5678、139****5678"),
    ("我叫李四，", "我叫李*，"), ("联系人：赵六，", "联系人：赵*，"), ("联系人为赵六电话", "联系人为赵*电话"),
    ("姓名：王小明，", "姓名：王**，"), ("本人欧阳娜娜，", "本人欧***，"), ("免贵姓欧阳", "免贵姓欧*"),
    ("王女士反映", "王*女士反映"), ("小区保安刘先生态度差", "小区保安刘*先生态度差"), ("，张伟先生来电", "，张*先生来电"),
    ("来电人张小姐，", "来电人张*小姐，"),
])
def test_scrub_patterns(text, expected):
    assert scrub_text(text) == expected


def test_scrub_known_names_and_values():
    assert scrub_text("张伟说张伟的事", ["张伟"]) == "张*说张*的事"
    assert scrub_text("张伟先生来电", ["张伟先生"]) == "张*先生来电"
    assert scrub_text("匿名来电", ["匿名", "*", "", None]) == "匿名来电"  # placeholders are not names
    assert scrub_text("回电88881234", known_phones=["88881234"]) == "回电********"
    assert scrub_text("单号GD2026100188881234", known_phones=["88881234"]) == "单号GD2026100188881234"
    assert scrub_text("证件44030819900101123X", known_ids=["44030819900101123X"]) == "证件440308********123X"


def test_scrub_is_idempotent_and_null_safe():
    for seed in range(500):
        title, body, caller = _render(seed, pii=True)
        once = scrub_text(body, [caller.name])
        assert scrub_text(once, [caller.name]) == once
    assert scrub_text(None) is None
    assert scrub_text("") == ""


def test_scrub_speed():
    """A loose floor (shared CI machines); `python -m citizen_voice.privacy` measures properly."""
    import time

    texts = []
    for seed in range(2000):
        _, body, _ = _render(seed, pii=seed % 15 == 0)
        texts.append((body + "经现场核实，2026-10-01已转办，工单GD20261001000123。" * 3)[:150])
    started = time.perf_counter()
    for _ in range(5):
        for text in texts:
            scrub_text(text)
    rate = 5 * len(texts) / (time.perf_counter() - started)
    assert rate > 20_000, rate


# -- find_personal_data ----------------------------------------------------------------------------------

def test_find_personal_data_with_checksum():
    bad_checksum = VALID_ID[:-1] + "6"
    text = f"电话13812345678，身份证{VALID_ID}，错号{bad_checksum}，旧证440308900101123"
    findings = find_personal_data(text)
    assert [f.kind for f in findings] == ["phone", "id_no", "id_no"]
    phone, valid, old = findings
    assert phone == Finding("phone", "138****5678", 2, 13)
    assert text[valid.start:valid.end] == VALID_ID and valid.sample == "440308********1239"
    assert old.sample == "440308*****1123"
    assert find_personal_data(scrub_text(text)) == []
    assert find_personal_data("身份证440308199013011234") == []  # month 13
    assert find_personal_data(None) == [] and find_personal_data("") == []


def test_find_personal_data_in_sandbox_texts():
    for seed in range(500):
        _, body, caller = _render(seed, pii=True)
        found = find_personal_data(body)
        if caller.phone in body:
            assert any(f.kind == "phone" and body[f.start:f.end] == caller.phone for f in found)
        if caller.id_no in body:  # the simulator writes valid check digits
            assert any(f.kind == "id_no" and body[f.start:f.end] == caller.id_no for f in found)
        assert find_personal_data(scrub_text(body, [caller.name])) == []


# -- protect_table -----------------------------------------------------------------------------------------

PERSONAL = PersonalData(fields={"caller_name": "name", "caller_phone": "phone", "caller_id_no": "id_no"},
                        text_fields=["title", "content", "missing_text"])


def _sandbox_table(n: int = 400):
    rows, callers = [], []
    for seed in range(n):
        title, body, caller = _render(seed, pii=seed % 3 == 0)
        if seed % 5 == 0:
            body += f"来电人{caller.name}再次来电。"  # the name outside any known pattern
        callers.append(caller)
        rows.append({"order_no": f"GD20261001{seed:06d}", "caller_name": caller.name, "caller_phone": caller.phone,
                     "caller_id_no": caller.id_no, "title": title, "content": body})
    rows.append({"order_no": "GD20261001999999", "caller_name": None, "caller_phone": None, "caller_id_no": None,
                 "title": None, "content": None})
    rows.append({"order_no": "GD20261001999998", "caller_name": "", "caller_phone": " ", "caller_id_no": "",
                 "title": "", "content": "电话13800001111"})
    repeat = callers[0]  # a repeat caller, phone written differently
    rows.append({"order_no": "GD20261001999997", "caller_name": repeat.name, "caller_phone": "+86 " + repeat.phone,
                 "caller_id_no": repeat.id_no.lower(), "title": "再次反映", "content": "同上"})
    return pa.Table.from_pylist(rows), callers


def test_protect_table_leaves_no_raw_value():
    table, callers = _sandbox_table()
    result = protect_table(table, PERSONAL, KEY, IDENTITY)
    out = result.table
    assert out.column_names == ["order_no", "caller_name", "caller_name_pseudonym", "caller_phone",
                                "caller_phone_pseudonym", "caller_id_no", "caller_id_no_pseudonym", "title", "content"]
    assert result.missing_fields == ["missing_text"]
    assert result.scrubbed_texts > 0
    raw = {v for c in callers for v in (c.name, c.phone, c.id_no)} | {"13800001111"}
    for name in out.column_names:
        for value in out.column(name).to_pylist():
            if value:
                leaked = [r for r in raw if r in value]
                assert not leaked, (name, value, leaked)
    assert out.column("order_no").equals(table.column("order_no"))


def test_protect_table_masks_and_pseudonyms():
    table, callers = _sandbox_table(50)
    out = protect_table(table, PERSONAL, KEY).table
    rows = out.to_pylist()
    for row, caller in zip(rows, callers, strict=False):
        assert row["caller_name"] == mask_name(caller.name)
        assert row["caller_phone"] == mask_phone(caller.phone)
        assert row["caller_id_no"] == mask_id_no(caller.id_no)
        assert row["caller_phone_pseudonym"] == pseudonym(caller.phone, "phone", KEY)
        assert row["caller_id_no_pseudonym"] == pseudonym(caller.id_no, "id_no", KEY)
        assert row["caller_name_pseudonym"] == pseudonym(caller.name, "name", KEY)
    null_row, empty_row, repeat_row = rows[-3:]
    assert all(null_row[c] is None for c in out.column_names if c != "order_no")
    assert empty_row["caller_phone_pseudonym"] is None and empty_row["caller_name"] == ""
    assert empty_row["content"] == "电话138****1111"
    # the repeat caller links through the pseudonym although the raw values are written differently
    for column in ("caller_phone_pseudonym", "caller_id_no_pseudonym", "caller_name_pseudonym"):
        assert repeat_row[column] == rows[0][column]
    # without an identity key there is no identities table
    assert protect_table(table, PERSONAL, KEY).identities is None


def test_protect_table_identities_decrypt_and_wrong_key_fails():
    table, callers = _sandbox_table(60)
    result = protect_table(table, PERSONAL, KEY, IDENTITY)
    ids = result.identities
    assert ids.schema.names == ["pseudonym", "kind", "encrypted", "key_id"]
    assert len(set(ids.column("pseudonym").to_pylist())) == ids.num_rows  # one row per pseudonym
    decrypted = {(r["kind"], decrypt_identity(r["encrypted"], IDENTITY)): r["pseudonym"] for r in ids.to_pylist()}
    for caller in callers:
        assert decrypted[("phone", caller.phone)] == pseudonym(caller.phone, "phone", KEY)
        assert decrypted[("id_no", caller.id_no)] == pseudonym(caller.id_no, "id_no", KEY)
        assert decrypted[("name", caller.name)] == pseudonym(caller.name, "name", KEY)
    for value in ids.column("encrypted").to_pylist():
        assert not any(c.phone in value or c.id_no in value for c in callers)
    assert set(ids.column("key_id").to_pylist()) == {IDENTITY.fingerprint}
    token = ids.column("encrypted")[0].as_py()
    with pytest.raises(IdentityDecryptionError):
        decrypt_identity(token, IdentityKey(b"\x08" * 32))
    tampered = base64.b64encode(bytes([base64.b64decode(token)[0] ^ 1]) + base64.b64decode(token)[1:]).decode()
    with pytest.raises(IdentityDecryptionError):
        decrypt_identity(tampered, IDENTITY)
    with pytest.raises(IdentityDecryptionError):
        decrypt_identity("not base64!", IDENTITY)
    assert encrypt_identity("x", IDENTITY) != encrypt_identity("x", IDENTITY)  # random nonces


def test_protect_table_types_nulls_and_guards():
    table = pa.table({
        "phone": pa.array([13812345678, None, 13812345678], pa.int64()),  # spreadsheet integers
        "phone2": pa.array([1.3912345678e10, None, float("nan")], pa.float64()),
        "name": pa.array(["张伟", None, "张伟"]).dictionary_encode(),
        "note": pa.array([None, None, None], pa.null()),
        "text": pa.chunked_array([["张伟来电13812345678"], [None, "无"]]),
    })
    personal = PersonalData(fields={"phone": "phone", "phone2": "phone", "name": "name"}, text_fields=["note", "text"])
    result = protect_table(table, personal, KEY, IDENTITY)
    out = result.table.to_pydict()
    assert out["phone"] == ["138****5678", None, "138****5678"]
    assert out["phone2"] == ["139****5678", None, None]
    assert out["name"] == ["张*", None, "张*"]
    assert out["text"] == ["张*来电138****5678", None, "无"]
    assert out["phone_pseudonym"][0] == pseudonym("13812345678", "phone", KEY) == out["phone_pseudonym"][2]
    assert result.identities.num_rows == 3  # 2 phones + 1 name
    with pytest.raises(ValueError, match="already"):
        protect_table(result.table, personal, KEY)
    empty = protect_table(table.slice(0, 0), personal, KEY, IDENTITY)
    assert empty.table.num_rows == 0 and empty.identities.num_rows == 0


# -- keys -------------------------------------------------------------------------------------------------

def test_key_from_env_hex_and_base64(tmp_path):
    secret = bytes(range(40))
    for text in (secret.hex(), secret.hex().upper(), "hex:" + secret.hex(), base64.b64encode(secret).decode(),
                 "base64:" + base64.b64encode(secret).decode(), base64.urlsafe_b64encode(secret).decode().rstrip("=")):
        key = load_pseudonym_key(environ={"CV_PSEUDONYM_KEY": text}, data_dir=tmp_path)
        assert key.secret == secret and key.source == "env:CV_PSEUDONYM_KEY" and not key.generated
    ident = load_identity_key(environ={"CV_IDENTITY_KEY": (b"\x01" * 32).hex()}, data_dir=tmp_path)
    assert ident.secret == b"\x01" * 32
    assert not (tmp_path / ".secrets").exists()  # nothing generated when the variables are set


def test_too_short_or_malformed_key_is_a_clear_error(tmp_path):
    short = (b"\x01" * 16).hex()
    with pytest.raises(KeyConfigError, match=r"CV_PSEUDONYM_KEY.*16 bytes.*at least 32") as info:
        load_pseudonym_key(environ={"CV_PSEUDONYM_KEY": short}, data_dir=tmp_path)
    assert short not in str(info.value)
    with pytest.raises(KeyConfigError, match="CV_PSEUDONYM_KEY: not valid hex or base64"):
        load_pseudonym_key(environ={"CV_PSEUDONYM_KEY": "not a key!!"}, data_dir=tmp_path)
    with pytest.raises(KeyConfigError, match=r"CV_IDENTITY_KEY.*48 bytes.*exactly 32"):
        load_identity_key(environ={"CV_IDENTITY_KEY": (b"\x01" * 48).hex()}, data_dir=tmp_path)
    with pytest.raises(KeyConfigError):
        PseudonymKey(b"short")
    with pytest.raises(KeyConfigError):
        IdentityKey(b"\x00" * 31)


def test_generated_key_file_is_created_once_with_mode_0600(tmp_path, caplog):
    caplog.set_level(logging.WARNING, logger="citizen_voice.privacy")
    first = load_pseudonym_key(environ={}, data_dir=tmp_path)
    path = tmp_path / ".secrets" / "pseudonym.key"
    assert first.generated and first.source == f"file:{path}"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert "CV_PSEUDONYM_KEY is not set" in caplog.text and first.fingerprint in caplog.text
    assert first.secret.hex() not in caplog.text
    second = load_pseudonym_key(environ={"CV_PSEUDONYM_KEY": ""}, data_dir=tmp_path)
    assert second.secret == first.secret  # reused: pseudonyms stay stable across runs
    assert pseudonym("13812345678", "phone", second) == pseudonym("13812345678", "phone", first)
    ident = load_identity_key(environ={}, data_dir=tmp_path)
    assert len(ident.secret) == 32 and ident.secret != first.secret[:32]
    assert stat.S_IMODE((tmp_path / ".secrets" / "identity.key").stat().st_mode) == 0o600
    assert load_identity_key(environ={}, data_dir=tmp_path).secret == ident.secret
    assert IdentityKey.load(environ={}, data_dir=tmp_path).secret == ident.secret
    assert PseudonymKey.load(environ={}, data_dir=tmp_path).secret == first.secret
    assert first.secret.hex() not in repr(first) and first.fingerprint in repr(first)
    assert sorted(p.name for p in (tmp_path / ".secrets").iterdir()) == ["identity.key", "pseudonym.key"]


def test_generated_key_defaults_to_the_data_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("CV_WAREHOUSE", str(tmp_path / "wh" / "warehouse.duckdb"))
    monkeypatch.delenv("CV_PSEUDONYM_KEY", raising=False)
    monkeypatch.delenv("CV_REQUIRE_KEYS", raising=False)
    key = load_pseudonym_key()
    assert key.source == f"file:{tmp_path / 'wh' / '.secrets' / 'pseudonym.key'}"


def test_loose_key_file_permissions_are_tightened(tmp_path):
    path = tmp_path / ".secrets" / "pseudonym.key"
    path.parent.mkdir()
    path.write_text((b"\x05" * 32).hex())
    path.chmod(0o644)
    assert load_pseudonym_key(environ={}, data_dir=tmp_path).secret == b"\x05" * 32
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    path.write_text("garbage!")
    with pytest.raises(KeyConfigError, match="pseudonym.key"):
        load_pseudonym_key(environ={}, data_dir=tmp_path)


def test_required_keys_disable_generation(tmp_path):
    with pytest.raises(KeyConfigError, match="CV_PSEUDONYM_KEY is not set"):
        load_pseudonym_key(environ={"CV_REQUIRE_KEYS": "1"}, data_dir=tmp_path)
    with pytest.raises(KeyConfigError, match="CV_IDENTITY_KEY is not set"):
        load_identity_key(environ={}, data_dir=tmp_path, allow_generated=False)
    assert not (tmp_path / ".secrets").exists()

