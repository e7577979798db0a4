"""The MLflow filter / order_by parser and the SQL it compiles to (no server)."""

from __future__ import annotations

import duckdb
import pytest

from ledgerflow.api.search import EXPERIMENTS, RUNS, Comparison, FilterError, OrderKey, parse_filter, parse_order_by
from ledgerflow.api.search.paging import decode_token, encode_token, query_fingerprint
from ledgerflow.api.search.sql import compile_search
from ledgerflow.errors import InvalidInputError
from ledgerflow.projector.tables import TABLES


def one(text: str, target=RUNS) -> Comparison:
    [comparison] = parse_filter(text, target)
    return comparison


def test_the_issue_example() -> None:
    text = "metrics.rmse < 0.8 AND params.model = 'rf' AND tags.team LIKE 'ml%' AND attributes.status = 'FINISHED'"
    assert parse_filter(text, RUNS) == [
        Comparison("metric", "rmse", "<", 0.8, 0), Comparison("param", "model", "=", "rf", 23),
        Comparison("tag", "team", "LIKE", "ml%", 47), Comparison("attribute", "status", "=", "FINISHED", 72)]


@pytest.mark.parametrize("op", ["=", "!=", "<", "<=", ">", ">="])
def test_every_numeric_comparator_on_metrics_and_numeric_attributes(op: str) -> None:
    assert one(f"metrics.acc {op} 0.5") == Comparison("metric", "acc", op, 0.5, 0)
    assert one(f"attributes.start_time{op}1700000000000").value == 1.7e12
    assert one(f"attributes.end_time {op} -1").comparator == op


@pytest.mark.parametrize("op", ["=", "!=", "LIKE", "ILIKE", "like", "iLike"])
def test_string_comparators_on_params_tags_and_attributes(op: str) -> None:
    assert one(f"params.model {op} 'rf'") == Comparison("param", "model", op.upper(), "rf", 0)
    assert one(f"tags.team {op} 'ml'").comparator == op.upper()
    assert one(f"attributes.run_name {op} 'a'").comparator == op.upper()
    assert one(f"datasets.digest {op} 'd1'").comparator == op.upper()


def test_in_not_in_and_null_checks() -> None:
    assert one("attributes.run_id IN ('a', \"b\",'c')").value == ("a", "b", "c")
    assert one("attributes.status not  in ('FAILED')") == Comparison("attribute", "status", "NOT IN", ("FAILED",), 0)
    assert one("params.model IN ('rf')").value == ("rf",)
    assert one("datasets.name IN ('x','y')").value == ("x", "y")
    assert one("tags.x IS NULL") == Comparison("tag", "x", "IS NULL", None, 0)
    assert one("tags.x is not null").comparator == "IS NOT NULL"
    assert one("params.x IS NOT NULL").comparator == "IS NOT NULL"
    assert one("metrics.x IS NULL").comparator == "IS NULL"


def test_prefix_aliases_and_attribute_spellings() -> None:
    for prefix, kind in [("metric", "metric"), ("param", "param"), ("parameters", "param"), ("tag", "tag"),
                         ("attribute", "attribute"), ("attr", "attribute"), ("run", "attribute"),
                         ("dataset", "dataset"), ("METRICS", "metric")]:
        key = "name" if kind == "dataset" else "status" if kind == "attribute" else "k"
        value = "1" if kind == "metric" else "'1'"
        assert one(f"{prefix}.{key} = {value}").kind == kind
    assert one("attributes.`Run name` = 'x'").key == "run_name"
    assert one("attributes.`run name` = 'x'").key == "run_name"
    assert one("attributes.Created > 5").key == "start_time"
    assert one("attributes.created > 5").key == "start_time"
    assert one("attributes.lifecycle_stage = 'deleted'").key == "lifecycle_stage"
    assert one("datasets.Context = 'training'").key == "context"


def test_quoted_keys_and_values() -> None:
    assert one("metrics.`my metric` > 1").key == "my metric"
    assert one('metrics."2019-04-02 error rate" < 1').key == "2019-04-02 error rate"
    assert one("params.`a.b` = 'x'").key == "a.b"
    assert one("params.a.b = 'x'").key == "a.b"  # MLflow splits at the first dot only
    assert one("tags.`mlflow.user` = ''").value == ""
    assert one("tags.`odd``key` = 'x'").key == "odd`key"
    assert one("tags.t = 'it''s'").value == "it's"
    assert one("tags.t = 'it\\'s'").value == "it's"
    assert one('tags.t = "say ""hi"""').value == 'say "hi"'
    assert one("tags.t = \"it's\"").value == "it's"
    assert one("tags.t = 'AND OR =  '").value == "AND OR =  "
    assert one("tags.t = 'back\\slash'").value == "back\\slash"


def test_numbers_and_whitespace() -> None:
    assert one("metrics.a > -1.5e-3").value == -1.5e-3
    assert one("metrics.a > .5").value == 0.5
    assert one("metrics.a > +2").value == 2.0
    assert one("  metrics.a>1  ").value == 1.0
    assert len(parse_filter("metrics.a > 1 and metrics.b < 2 AnD metrics.c = 3", RUNS)) == 3
    assert parse_filter("", RUNS) == [] == parse_filter("   ", RUNS) == parse_filter(None, RUNS)


def test_experiment_identifiers() -> None:
    assert one("name = 'x'", EXPERIMENTS) == Comparison("attribute", "name", "=", "x", 0)
    assert one("attributes.name LIKE 'x%'", EXPERIMENTS).key == "name"
    assert one("creation_time > 5", EXPERIMENTS).value == 5.0
    assert one("attributes.last_update_time <= 5", EXPERIMENTS).comparator == "<="
    assert one("tags.group IS NOT NULL", EXPERIMENTS).kind == "tag"


@pytest.mark.parametrize("text, target, fragment, position", [
    ("metrics.a < 1 OR metrics.b < 2", RUNS, "OR is not supported", 14),
    ("metrics.a < 1 or metrics.b < 2", RUNS, "OR is not supported", 14),
    ("params.a = 'x", RUNS, "unterminated string", 11),
    ('params.a = "x', RUNS, "unterminated string", 11),
    ("params.`a = 'x'", RUNS, "unterminated backquoted name", 7),
    ("foo.a = 'x'", RUNS, "unknown identifier prefix 'foo'", 0),
    ("metrics.a = 1", EXPERIMENTS, "unknown identifier prefix 'metrics'", 0),
    ("metrics.a <", RUNS, "missing value after metrics.a <", 11),
    ("metrics.a < ", RUNS, "missing value", 12),
    ("params.a =", RUNS, "missing value", 10),
    ("metrics.a", RUNS, "expected a comparator", 9),
    ("metrics.a ~ 1", RUNS, "expected a comparator", 10),
    ("metrics.a < 'x'", RUNS, "compares numbers", 12),
    ("metrics.a LIKE '1%'", RUNS, "comparator 'LIKE' is not allowed for metrics.a", 10),
    ("metrics.a IN (1)", RUNS, "comparator 'IN' is not allowed", 10),
    ("params.a = 1", RUNS, "quote the value ('1')", 11),
    ("params.a > '1'", RUNS, "comparator '>' is not allowed for params.a", 9),
    ("tags.a <= 'x'", RUNS, "not allowed", 7),
    ("attributes.status = 1", RUNS, "compares strings", 20),
    ("attributes.start_time = '1'", RUNS, "compares numbers", 24),
    ("attributes.start_time LIKE '1%'", RUNS, "not allowed", 22),
    ("attributes.start_time IS NULL", RUNS, "not allowed", 22),
    ("attributes.colour = 'red'", RUNS, "unknown attribute 'colour'", 11),
    ("datasets.size = 'x'", RUNS, "unknown dataset field 'size'", 9),
    ("status = 'x'", RUNS, "write attributes.status", 0),
    ("rmse < 1", RUNS, "has no prefix", 0),
    ("colour = 'x'", EXPERIMENTS, "unknown attribute 'colour'", 0),
    ("metrics.a < 1 junk", RUNS, "unexpected 'junk'", 14),
    ("metrics.a < 1 AND", RUNS, "expected a condition after AND", 14),
    ("metrics.a < 1 AND AND metrics.b < 1", RUNS, "expected an identifier", 18),
    ("AND metrics.a < 1", RUNS, "got the keyword 'AND'", 0),
    ("metrics.a < 1;", RUNS, "unexpected ';'", 13),
    ("metrics.a < 1 metrics.b < 2", RUNS, "expected AND", 14),
    ("metrics.a == 1", RUNS, "use '='", 10),
    ("metrics.a <> 1", RUNS, "use '!='", 10),
    ("metrics. = 1", RUNS, "expected a key name", 8),
    ("metrics.`` = 1", RUNS, "empty key", 8),
    ("tags.a IS 5", RUNS, "expected NULL or NOT NULL", 10),
    ("tags.a IS NOT 5", RUNS, "expected NULL after IS", 14),
    ("tags.a NOT LIKE 'x'", RUNS, "expected IN after NOT", 11),
    ("tags.a IN 'x'", RUNS, "expected '('", 10),
    ("tags.a IN ('x'", RUNS, "expected ',' or ')'", 14),
    ("tags.a IN ('x',", RUNS, "missing value", 15),
    ("tags.a IN ()", RUNS, "expected a value", 11),
    ("tags.a IN ('x', 2)", RUNS, "must be quoted strings", 16),
    ("tags.a = `x`", RUNS, "backquotes are for names", 9),
    ("tags.a = rf", RUNS, "expected a value", 9),
    ("metrics.a < 1e999", RUNS, "out of range", 12),
    ("= 'x'", RUNS, "expected an identifier", 0),
])
def test_malformed_filters_name_the_token_and_position(text: str, target, fragment: str, position: int) -> None:
    with pytest.raises(FilterError) as caught:
        parse_filter(text, target)
    assert fragment in str(caught.value)
    assert caught.value.position == position, str(caught.value)
    assert f"position {position}" in str(caught.value)
    assert isinstance(caught.value, InvalidInputError)  # the API maps it to 400 INVALID_PARAMETER_VALUE


def test_order_by_clauses() -> None:
    assert parse_order_by("metrics.rmse", RUNS) == OrderKey("metric", "rmse", True)
    assert parse_order_by("metrics.`my metric` desc", RUNS) == OrderKey("metric", "my metric", False)
    assert parse_order_by("params.lr ASC", RUNS) == OrderKey("param", "lr", True)
    assert parse_order_by("attributes.start_time DESC", RUNS) == OrderKey("attribute", "start_time", False)
    assert parse_order_by("start_time DESC", RUNS) == OrderKey("attribute", "start_time", False)
    assert parse_order_by("tags.`a b`", RUNS) == OrderKey("tag", "a b", True)
    assert parse_order_by("name DESC", EXPERIMENTS) == OrderKey("attribute", "name", False)
    assert parse_order_by("attributes.creation_time", EXPERIMENTS) == OrderKey("attribute", "creation_time", True)
    for bad, fragment in [("metrics.rmse SIDEWAYS", "unexpected 'SIDEWAYS'"), ("", "empty"),
                          ("datasets.name", "cannot be ordered by datasets"), ("rmse ASC", "has no prefix"),
                          ("metrics.a ASC DESC", "unexpected 'DESC'"), ("colour", "has no prefix"),
                          ("metrics.`x DESC", "unterminated")]:
        with pytest.raises(FilterError, match=fragment):
            parse_order_by(bad, RUNS)


def test_page_tokens_are_bound_to_their_query() -> None:
    fingerprint = query_fingerprint("runs", ["e"], "metrics.a > 1", [], "ALL")
    assert decode_token(encode_token(40, fingerprint), fingerprint) == 40
    assert decode_token(None, fingerprint) == 0
    other = query_fingerprint("runs", ["e"], "metrics.a > 2", [], "ALL")
    with pytest.raises(InvalidInputError, match="different query"):
        decode_token(encode_token(40, fingerprint), other)
    for junk in ["x", "!!!", "eyJ2IjoxfQ", encode_token(-1, fingerprint), "W10"]:
        with pytest.raises(InvalidInputError, match="invalid page_token"):
            decode_token(junk, fingerprint)


@pytest.fixture
def db() -> duckdb.DuckDBPyConnection:
    connection = duckdb.connect()
    for table in TABLES:
        connection.execute(table.ddl())
    connection.execute("INSERT INTO runs VALUES ('r1', 'e', 'x', 'u', 'FINISHED', 1, 2, 'active', NULL, NULL, NULL), "
                       "('r2', 'e', 'y', 'u', 'FINISHED', 2, 3, 'active', NULL, NULL, NULL)")
    connection.execute("INSERT INTO params VALUES ('r1', 'p''; DROP TABLE runs; --', 'v'), ('r2', 'model', 'rf')")
    return connection


def test_values_and_keys_are_bound_never_pasted(db: duckdb.DuckDBPyConnection) -> None:
    evil = "'; DROP TABLE runs; --"
    comparisons = parse_filter("params.`p'; DROP TABLE runs; --` = 'v'", RUNS)
    query = compile_search(RUNS, comparisons, [parse_order_by("params.`x' OR 1=1`", RUNS)], scope_sql=[],
                           scope_params=[], limit=10, offset=0)
    assert "DROP" not in query.sql and "1=1" not in query.sql
    assert [row[0] for row in db.execute(query.sql, query.params).fetchall()] == ["r1"]
    query = compile_search(RUNS, parse_filter(f"params.model != '{evil.replace(chr(39), chr(39) * 2)}'", RUNS), [],
                           scope_sql=[], scope_params=[], limit=10, offset=0)
    assert "DROP" not in query.sql
    assert [row[0] for row in db.execute(query.sql, query.params).fetchall()] == ["r2"]
    assert db.execute("SELECT count(*) FROM runs").fetchone() == (2,)


def test_each_key_is_joined_once_and_filters_make_inner_joins(db: duckdb.DuckDBPyConnection) -> None:
    comparisons = parse_filter("metrics.a > 1 AND metrics.a < 5 AND params.p IS NULL", RUNS)
    query = compile_search(RUNS, comparisons, [parse_order_by("metrics.a DESC", RUNS)], scope_sql=[],
                           scope_params=[], limit=10, offset=0)
    assert query.sql.count("JOIN latest_metrics") == 1 and " JOIN latest_metrics" in query.sql
    assert "LEFT JOIN params" in query.sql and "LEFT JOIN latest_metrics" not in query.sql
    assert query.sql.rstrip().endswith("t.run_id ASC LIMIT ? OFFSET ?")
    db.execute(query.sql, query.params).fetchall()  # valid SQL for DuckDB
