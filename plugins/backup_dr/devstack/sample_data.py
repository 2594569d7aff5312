"""Realistic sample data for the ``korea_public_data`` database and the Redis cache.

Deterministic (seeded) documents shaped like the public-data API's: government
announcements (공고), registered businesses (사업체), content pages and statistics, with
nested fields, dates, ObjectIds, Decimal128 amounts and Korean text, plus the index kinds
the production schema uses (unique, compound, TTL, partial).
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone
from decimal import Decimal

from bson import Decimal128, ObjectId

DATABASE = "korea_public_data"
COLLECTIONS = ("announcements", "businesses", "contents", "statistics")

_REGIONS = ["서울특별시", "부산광역시", "대구광역시", "인천광역시", "광주광역시", "대전광역시", "울산광역시", "세종특별자치시", "경기도", "강원특별자치도", "충청북도", "충청남도", "전북특별자치도", "전라남도", "경상북도", "경상남도", "제주특별자치도"]
_AGENCIES = ["중소벤처기업부", "과학기술정보통신부", "산업통상자원부", "고용노동부", "국토교통부", "문화체육관광부", "행정안전부", "보건복지부"]
_TOPICS = ["창업 지원", "기술 개발", "수출 바우처", "스마트 공장", "청년 고용", "소상공인 정책자금", "R&D 과제", "디지털 전환", "탄소중립", "지역 혁신"]
_INDUSTRIES = ["제조업", "정보통신업", "도매 및 소매업", "건설업", "전문, 과학 및 기술 서비스업", "숙박 및 음식점업", "운수 및 창고업"]
_WORDS = "지원 사업 공고 신청 대상 기업 선정 평가 예산 협약 접수 기간 제출 서류 문의 담당 부서 안내 개정 변경 모집".split()

_EPOCH = datetime(2026, 1, 1, tzinfo=timezone.utc)


def _text(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(_WORDS) for _ in range(n))


def announcement(rng: random.Random, i: int) -> dict:
    posted = _EPOCH + timedelta(hours=rng.randint(0, 24 * 300))
    return {
        "_id": ObjectId(f"{int(posted.timestamp()):08x}{i:016x}"),  # time-ordered, like driver-made ids
        "announcement_id": f"ANN-{2026}-{i:07d}",
        "title": f"[{rng.choice(_AGENCIES)}] 2026년 {rng.choice(_TOPICS)} 사업 공고 제{i}호",
        "agency": {"name": rng.choice(_AGENCIES), "department": f"{rng.choice(_TOPICS)}과", "phone": f"044-{rng.randint(200, 999)}-{rng.randint(1000, 9999)}"},
        "region": rng.choice(_REGIONS),
        "status": rng.choice(["모집중", "마감", "예정", "선정완료"]),
        "budget_krw": Decimal128(Decimal(rng.randint(10, 5000) * 1_000_000)),
        "support_rate": Decimal128(Decimal(f"{rng.randint(30, 90)}.{rng.randint(0, 99):02d}")),
        "period": {"start": posted, "end": posted + timedelta(days=rng.randint(7, 60))},
        "tags": rng.sample(_TOPICS, k=rng.randint(1, 3)),
        "attachments": [{"name": f"공고문_{i}_{k}.hwp", "size": rng.randint(10_000, 2_000_000)} for k in range(rng.randint(0, 3))],
        "body": _text(rng, rng.randint(20, 120)),
        "views": rng.randint(0, 100_000),
        "created_at": posted,
        "updated_at": posted + timedelta(minutes=rng.randint(0, 10_000)),
    }


def business(rng: random.Random, i: int) -> dict:
    founded = _EPOCH - timedelta(days=rng.randint(100, 15_000))
    return {
        "business_number": f"{rng.randint(100, 999)}-{rng.randint(10, 99)}-{i:05d}",
        "name": f"(주){rng.choice(['한빛', '누리', '새솔', '다온', '가람', '미래', '세종', '청솔'])}{rng.choice(['테크', '소프트', '바이오', '에너지', '물산', '푸드'])}{i}",
        "representative": rng.choice(["김", "이", "박", "최", "정", "강", "조", "윤"]) + rng.choice(["민준", "서연", "도윤", "하은", "지호", "수아"]),
        "industry": rng.choice(_INDUSTRIES),
        "address": {"region": rng.choice(_REGIONS), "detail": f"{rng.randint(1, 300)}번길 {rng.randint(1, 99)}", "postal_code": f"{rng.randint(10000, 63999)}"},
        "employees": rng.randint(1, 2000),
        "revenue_krw": Decimal128(Decimal(rng.randint(1, 100_000) * 1_000_000)),
        "founded_at": founded,
        "certifications": rng.sample(["벤처기업", "이노비즈", "메인비즈", "여성기업", "사회적기업"], k=rng.randint(0, 2)),
        "active": rng.random() > 0.1,
        "location": {"type": "Point", "coordinates": [round(rng.uniform(126.0, 129.5), 6), round(rng.uniform(33.1, 38.6), 6)]},
    }


def content(rng: random.Random, i: int) -> dict:
    doc = {
        "slug": f"guide-{i}",
        "title": f"{rng.choice(_TOPICS)} 신청 가이드 {i}",
        "sections": [{"heading": f"{k + 1}. {rng.choice(_WORDS)}", "text": _text(rng, 40)} for k in range(rng.randint(1, 5))],
        "author": {"id": ObjectId(), "name": rng.choice(["운영팀", "정책팀", "데이터팀"])},
        "published": rng.random() > 0.2,
        "published_at": _EPOCH + timedelta(days=rng.randint(0, 300)),
    }
    if rng.random() < 0.3:
        doc["draft_expires_at"] = _EPOCH + timedelta(days=rng.randint(400, 800))
    return doc


def statistic(rng: random.Random, i: int) -> dict:
    day = _EPOCH + timedelta(days=i // 20)
    return {
        "date": day,
        "metric": ["api_calls", "unique_users", "downloads", "errors"][i % 4],
        "region": _REGIONS[i % len(_REGIONS)],
        "endpoint": f"/api/v1/{['announcements', 'businesses', 'contents'][i % 3]}",
        "value": rng.randint(0, 1_000_000),
        "p95_latency_ms": round(rng.uniform(5, 900), 3),
        "cost_krw": Decimal128(Decimal(f"{rng.randint(0, 99999)}.{rng.randint(0, 99):02d}")),
    }


_MAKERS = {"announcements": announcement, "businesses": business, "contents": content, "statistics": statistic}

DEFAULT_COUNTS = {"announcements": 2000, "businesses": 1500, "contents": 300, "statistics": 1200}


def create_indexes(db) -> None:
    """The production index set: unique, compound, TTL and partial indexes."""
    db.announcements.create_index("announcement_id", unique=True)
    db.announcements.create_index([("region", 1), ("period.end", -1)])
    db.announcements.create_index([("status", 1)], partialFilterExpression={"status": "모집중"})
    db.businesses.create_index("business_number", unique=True)
    db.businesses.create_index([("industry", 1), ("employees", -1)])
    db.contents.create_index("slug", unique=True)
    db.contents.create_index("draft_expires_at", expireAfterSeconds=0)
    db.statistics.create_index([("date", -1), ("metric", 1), ("region", 1)], unique=True)


def seed_mongo(client, counts: dict[str, int] | None = None, *, database: str = DATABASE, seed: int = 20261126, batch: int = 1000) -> dict[str, int]:
    """Drop and refill the database; return the document count per collection."""
    counts = {**DEFAULT_COUNTS, **(counts or {})}
    rng = random.Random(seed)
    client.drop_database(database)
    db = client[database]
    for name in COLLECTIONS:
        make = _MAKERS[name]
        for start in range(0, counts[name], batch):
            db[name].insert_many([make(rng, i) for i in range(start, min(start + batch, counts[name]))], ordered=False)
        if counts[name] == 0:
            db.create_collection(name)
    create_indexes(db)
    return {name: db[name].count_documents({}) for name in COLLECTIONS}


def seed_redis(r, keys: int = 2000, *, seed: int = 7, ttl_fraction: float = 0.1) -> int:
    """Fill a Redis db with cache-like keys of every type; return DBSIZE."""
    rng = random.Random(seed)
    pipe = r.pipeline(transaction=False)
    for i in range(keys):
        kind = i % 6
        key = f"cache:{['ann', 'biz', 'stat', 'session', 'rank', 'events'][kind]}:{i}"
        if kind == 0:
            pipe.set(key, f"{{\"title\": \"{rng.choice(_TOPICS)} 공고 {i}\"}}")
        elif kind == 1:
            pipe.hset(key, mapping={"name": f"사업체{i}", "region": rng.choice(_REGIONS), "employees": rng.randint(1, 500)})
        elif kind == 2:
            pipe.set(key, rng.randint(0, 10**9))
        elif kind == 3:
            pipe.rpush(key, *[f"page:{rng.randint(1, 500)}" for _ in range(rng.randint(1, 8))])
        elif kind == 4:
            pipe.zadd(key, {f"announcement:{rng.randint(1, 5000)}": rng.random() * 100 for _ in range(5)})
        else:
            pipe.sadd(key, *[rng.choice(_REGIONS) for _ in range(3)])
        if rng.random() < ttl_fraction:
            pipe.expire(key, rng.randint(3600, 86400 * 7))
        if i % 1000 == 999:
            pipe.execute()
    pipe.execute()
    return r.dbsize()
