"""Storage layout of the sandbox department systems.

The generator writes each system's own data here; the servers read it. The stores keep the
full history of every record (when each version was recorded), so a server can show the system
as it was at any moment (`as_of`) and late updates behave as they do in real systems.

Times stored for filtering are integers (`*_ts`, epoch seconds); the text columns hold each
system's own rendering (which is where format mess lives).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

HOTLINE_DDL = """
CREATE TABLE IF NOT EXISTS orders (
    row_id INTEGER PRIMARY KEY,      -- physical row; faults may repeat or omit order_no
    order_no TEXT,                   -- 工单编号
    channel_code TEXT,               -- 受理渠道 (platform standard code)
    demand_type_code TEXT,           -- 诉求类型
    urgency TEXT,                    -- 紧急程度
    title TEXT,
    content TEXT,
    category_code TEXT,              -- 三级分类
    district_code TEXT,
    street_code TEXT,
    community_code TEXT,
    address TEXT,
    caller_name TEXT,
    caller_phone TEXT,
    caller_id_no TEXT,
    confidential INTEGER,            -- 是否保密
    external_ref TEXT,               -- id in the channel's own system (Open311 id for APP)
    received_at TEXT,                -- ISO-8601 with +08:00 (faults may be malformed)
    received_ts INTEGER              -- for ordering; NULL when received_at is malformed
);
CREATE TABLE IF NOT EXISTS order_versions (
    row_id INTEGER NOT NULL,         -- orders.row_id
    recorded_ts INTEGER NOT NULL,    -- when this version became visible in the system
    status TEXT NOT NULL,            -- accepted / handling / closed / visited
    lead_dept_code TEXT,
    assist_dept_codes TEXT,          -- comma separated
    is_direct_answer INTEGER,
    due_at TEXT,
    closed_at TEXT,
    reply_content TEXT,
    parent_order_no TEXT,            -- 并单: the order this one was merged into
    PRIMARY KEY (row_id, recorded_ts)
);
CREATE TABLE IF NOT EXISTS events (
    event_id TEXT PRIMARY KEY,
    order_no TEXT,
    event_type TEXT,                 -- simulator.city.EVENT_TYPES
    dept_code TEXT,
    role TEXT,                       -- lead / assist / NULL
    occurred_at TEXT,                -- ISO-8601 +08:00
    recorded_ts INTEGER NOT NULL,    -- when the event reached the system (late updates)
    note TEXT
);
CREATE INDEX IF NOT EXISTS ix_versions_ts ON order_versions (recorded_ts);
CREATE INDEX IF NOT EXISTS ix_events_ts ON events (recorded_ts, event_id);
CREATE INDEX IF NOT EXISTS ix_orders_no ON orders (order_no);
"""

OPEN311_DDL = """
CREATE TABLE IF NOT EXISTS services (
    service_code TEXT PRIMARY KEY,
    service_name TEXT,
    description TEXT,
    "group" TEXT,
    keywords TEXT
);
CREATE TABLE IF NOT EXISTS requests (
    service_request_id TEXT PRIMARY KEY,
    service_code TEXT,
    description TEXT,
    agency_responsible TEXT,
    address TEXT,
    zipcode TEXT,
    lat REAL,
    long REAL,
    requested_datetime TEXT,          -- ISO-8601 UTC ("Z")
    requested_ts INTEGER NOT NULL,
    expected_datetime TEXT,
    closed_ts INTEGER,                -- NULL while open; the request is 'closed' from then on
    closed_status_notes TEXT,
    recorded_closed_ts INTEGER        -- when the close became visible (late updates)
);
CREATE INDEX IF NOT EXISTS ix_requests_ts ON requests (requested_ts);
"""

# 住建局's own ticket system (a department SQL database with pinyin column names).
ZHUJIAN_DDL = """
CREATE TABLE IF NOT EXISTS gd_main (
    bjbh TEXT PRIMARY KEY,            -- 本局编号 (the department's own id)
    gdbh TEXT,                        -- 12345 工单编号
    zbxb TEXT,                        -- 主办/协办 (lead or assisting unit)
    slsj TEXT,                        -- 受理时间 'YYYY-MM-DD HH:MM:SS' local time
    wtfl TEXT,                        -- 问题分类 (the bureau's own numeric code)
    qy TEXT,                          -- 区域 (district name in Chinese)
    jd TEXT,                          -- 街道 name
    dz TEXT,                          -- 地址
    bt TEXT,                          -- 标题
    nr TEXT,                          -- 内容
    lxr TEXT,                         -- 联系人
    lxdh TEXT,                        -- 联系电话
    bjzt TEXT,                        -- 办件状态 1 待签收 2 办理中 3 已办结 9 已退回
    blsx TEXT,                        -- 办理时限
    bjsj TEXT,                        -- 办结时间
    hfnr TEXT,                        -- 回复内容
    gxsj TEXT                         -- 更新时间 'YYYY-MM-DD HH:MM:SS' local time
);
CREATE TABLE IF NOT EXISTS gd_lz (
    lzid INTEGER PRIMARY KEY,         -- 流转记录 id
    bjbh TEXT,
    czlx TEXT,                        -- 操作类型 (Chinese: 签收/退回/延期申请/回复/办结 ...)
    czsj TEXT,                        -- 操作时间 local
    czr TEXT,                         -- 操作人 (department staff id)
    yj TEXT,                          -- 意见
    gxsj TEXT
);
"""


def connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    return conn


def create_store(path: Path, ddl: str) -> sqlite3.Connection:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists():
        path.unlink()
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA journal_mode=OFF")
    conn.execute("PRAGMA synchronous=OFF")
    conn.executescript(ddl)
    return conn
