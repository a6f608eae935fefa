"""Worlds written as YAML files (`circus_core.declarative`, `pipelines.scenarios.worlds`): the
example world runs as its file says, restarts byte for byte, shards like a Python world, and a
bad file is refused before anything runs, naming file, line, column, key and value."""

from __future__ import annotations

import math
import os
import subprocess
import sys
import textwrap
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from circus_core import CircusError
from circus_core.declarative import WorldFileError, load_world, world_schema_json
from pipelines.scenarios.worlds import scenario_from_file

ROOT = Path(__file__).resolve().parent.parent
COFFEE = ROOT / "circus_core" / "data" / "coffee_shop.yaml"
HOURS = [0, 0, 0, 0, 0, 0, 2, 8, 10, 6, 3, 3, 4, 3, 2, 2, 2, 1, 1, 0, 0, 0, 0, 0]


def double(values: pd.Series) -> pd.Series:
    """An `apply` function for the tests (importable as tests.test_declarative:double)."""
    return values * 2


def test_the_coffee_shop_runs_as_its_file_says() -> None:
    """1.5 orders per customer and day (gamma(2, 0.75) activity: per-customer counts have mean 1.5
    and variance 1.5 + 2 x 0.75^2 = 2.625), hours in proportion to the profile's weights (given
    the count, each order's hour is an independent draw), drinks from the customer's favourite."""
    scenario = scenario_from_file(COFFEE)
    assert scenario.log_ids == ("orders",)  # discovered from the stories
    circus = scenario.create(4000)
    orders = circus.run("1D")["orders"].to_pandas()
    assert list(orders.columns) == ["TIME", "CUSTOMER", "CUSTOMER_NAME", "BARISTA", "BARISTA_NAME", "DRINK", "PRICE"]
    customers = circus.get_population("customers")
    assert customers.size == 4000 and circus.get_population("baristas").size == 40
    per_customer = orders["CUSTOMER"].value_counts().reindex(customers.plain_ids(), fill_value=0)
    assert abs(per_customer.mean() - 1.5) < 4.5 * math.sqrt(2.625 / 4000)
    n = len(orders)
    hours = orders["TIME"].dt.hour.value_counts().reindex(range(24), fill_value=0)
    for hour, weight in enumerate(HOURS):
        p = weight / sum(HOURS)
        assert abs(hours[hour] / n - p) <= 4.5 * math.sqrt(p * (1 - p) / n) + 1e-12, hour
    favourite = customers.get_attribute("FAVOURITE").get_values(orders["CUSTOMER"].to_numpy())
    assert (favourite.to_numpy() == orders["DRINK"].to_numpy()).all()
    knows = circus.get_population("customers").get_relationship("regular_baristas").get_relations()
    pairs = set(zip(knows["from"], knows["to"], strict=True))
    assert all(pair in pairs for pair in zip(orders["CUSTOMER"], orders["BARISTA"], strict=True))


def test_a_yaml_world_restarts_byte_for_byte(tmp_path: Path) -> None:
    scenario = scenario_from_file(COFFEE)
    straight = scenario.create(500)
    expected = [straight.run("1D")["orders"] for _ in range(2)]
    first = scenario.create(500)
    day1 = first.run("1D")["orders"]
    first.save(tmp_path / "ck")
    day2 = scenario.restore(tmp_path / "ck").run("1D")["orders"]
    assert day1.equals(expected[0]) and day2.equals(expected[1])


def _world(tmp_path: Path, text: str, name: str = "w.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


BASE = """\
name: w
start: "2026-01-05T00:00:00+00:00"
step: 1h
seed: 1
populations:
  users:
    size: 100
stories:
  visit:
    population: users
    member_id_field: USER
    activity: {per_day: 2}
    operations:
      - timestamp: {named_as: TIME}
      - log: {id: visits, cols: [TIME, USER]}
"""


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        (
            "activity: {per_day: 2}",
            "activity: {per_day: -2}",
            r"w\.yaml:12:25: stories\.visit\.activity\.per_day: -2 is negative",
        ),
        (
            "member_id_field: USER",
            "member_id_feld: USER",
            r"w\.yaml:11:5: stories\.visit\.member_id_feld: unknown key 'member_id_feld'; "
            r"did you mean 'member_id_field'\?",
        ),
        (
            "population: users",
            "population: user",
            r"w\.yaml:10:17: stories\.visit\.population: no population named 'user'; did you mean 'users'\?",
        ),
        ("seed: 1", "seed: one", r"w\.yaml:4:7: seed: expected an integer, got 'one'"),
        (
            "activity: {per_day: 2}",
            "activity: {per_day: 2, per_week: 3}",
            r"w\.yaml:12:15: stories\.visit\.activity: give exactly one of per_day, per_week; got per_day, per_week",
        ),
        ("step: 1h\n", "", r"w\.yaml:1:1: missing key 'step'"),
        (
            'start: "2026-01-05T00:00:00+00:00"',
            'start: "2026-01-05T00:00:00"',
            r"w\.yaml:2:8: start: start must be timezone-aware, got naive '2026-01-05T00:00:00'",
        ),
        (
            "      - timestamp: {named_as: TIME}",
            "      - timestamp: {named_as: TIME\n",
            r"w\.yaml:16:12: not valid YAML: expected ',' or '}', but got ':'",
        ),
        (
            "      - timestamp: {named_as: TIME}",
            "      - apply: {function: 'tests.test_declarative:nope', inputs: [USER], named_as: X}",
            r"w\.yaml:14:27: stories\.visit\.operations\[0\]\.apply\.function: cannot import "
            r"'tests\.test_declarative:nope': module 'tests\.test_declarative' has no attribute 'nope'",
        ),
        (
            "    size: 100",
            "    size: 100\n    attributes: {A: {generator: colour}}",
            r"w\.yaml:8:33: populations\.users\.attributes\.A\.generator: no generator named 'colour' \(known: none\)",
        ),
    ],
)
def test_a_bad_world_names_file_line_column_key_and_value(tmp_path: Path, old: str, new: str, message: str) -> None:
    assert old in BASE
    path = _world(tmp_path, BASE.replace(old, new))
    with pytest.raises(WorldFileError, match=message):
        load_world(path)


def test_apply_calls_a_python_function_named_in_the_file(tmp_path: Path) -> None:
    text = BASE.replace(
        "      - timestamp: {named_as: TIME}",
        "      - generate: {generator: {numpy: {method: integers, low: 0, high: 10}}, named_as: N}\n"
        "      - apply: {function: 'tests.test_declarative:double', inputs: [N], named_as: TWICE}\n"
        "      - timestamp: {named_as: TIME}",
    ).replace("cols: [TIME, USER]", "cols: [TIME, USER, N, TWICE]")
    logs = scenario_from_file(_world(tmp_path, text)).create().run("1D")["visits"].to_pandas()
    assert len(logs) > 0 and (logs["TWICE"] == 2 * logs["N"]).all()


def test_reference_populations_are_shared_by_the_shards_of_a_yaml_world(tmp_path: Path) -> None:
    text = BASE.replace(
        "populations:\n  users:\n    size: 100\n",
        "populations:\n"
        "  shops:\n    size: 20\n    reference: true\n"
        "    attributes: {CITY: {choice: {values: [a, b, c]}}}\n"
        "  users:\n    size: 100\n"
        "relationships:\n  - {name: shops, from: users, to: shops, degree: 2}\n",
    ).replace(
        "      - timestamp: {named_as: TIME}",
        "      - select_one: {relationship: users.shops, from: USER, named_as: SHOP}\n"
        "      - timestamp: {named_as: TIME}",
    )
    scenario = scenario_from_file(_world(tmp_path, text))
    a, b = (scenario.create(200, shard=k, shards=2) for k in range(2))
    assert a.reference == ["shops"]
    assert a.get_population("shops").to_dataframe().equals(b.get_population("shops").to_dataframe())
    assert set(np.asarray(a.get_population("users").ids) % 2) == {0}
    assert len(a.run("1D")["visits"]) > 0


def test_the_published_schema_is_the_one_the_loader_uses() -> None:
    shipped = ROOT / "circus_core" / "data" / "world.schema.json"
    assert shipped.read_text() == world_schema_json()


REACTIONS = """\
name: reactions
start: "2026-01-05T00:00:00+00:00"
step: 1h
seed: 5
populations:
  users: {size: 400}
  shops: {size: 30}
relationships:
  - {name: shops, from: users, to: shops, degree: 6}
stories:
  visit:
    population: users
    member_id_field: USER
    activity: {per_day: 3}
    states:
      away: {activity: {per_day: 0}}
    operations:
      - select_many: {relationship: users.shops, from: USER, named_as: TWO_SHOPS, quantity: 2}
      - neighbourhood_size: {relationship: users.shops, from: USER, named_as: N_SHOPS}
      - generate: {generator: {choice: {values: [true, false], weights: [0.3, 0.7]}}, named_as: SKIP}
      - drop_row: {condition_field: SKIP}
      - generate: {generator: {choice: {values: [true, false], weights: [0.5, 0.5]}}, named_as: CALL}
      - force_act_next: {story: callback, member_id_field: USER, condition_field: CALL, delay: 30min}
      - transit_to_state: {story: visit, member_id_field: USER, state: away}
      - timestamp: {named_as: TIME}
      - log: {id: visits, cols: [TIME, USER, TWO_SHOPS, N_SHOPS, SKIP, CALL]}
  callback:
    population: users
    member_id_field: USER
    timer: null
    operations:
      - timestamp: {named_as: TIME}
      - log: {id: callbacks, cols: [TIME, USER]}
"""


def test_reactions_states_lists_and_dropped_rows_from_yaml(tmp_path: Path) -> None:
    scenario = scenario_from_file(_world(tmp_path, REACTIONS))
    assert scenario.log_ids == ("visits", "callbacks")
    circus = scenario.create()
    day1 = circus.run("1D")
    visits, callbacks = day1["visits"].to_pandas(), day1["callbacks"].to_pandas()
    assert len(visits) > 100
    assert not visits["SKIP"].any()  # dropped rows go no further
    # two distinct shops each (as many as there are for members with fewer)
    assert all(
        len(set(shops)) == len(shops) == min(2, n)
        for shops, n in zip(visits["TWO_SHOPS"], visits["N_SHOPS"], strict=True)
    )
    degrees = circus.get_population("users").get_relationship("shops").get_neighbourhood_size(visits["USER"].to_numpy())
    assert (visits["N_SHOPS"].to_numpy() == degrees).all()
    day2 = circus.run("1D")
    later = day2["visits"].to_pandas() if "visits" in day2 else visits.iloc[:0]
    # everyone who visited went away (activity 0): no visit from them on day 2
    assert not set(later["USER"]) & set(visits["USER"])
    both = pd.concat([visits, later])
    callbacks = pd.concat([callbacks, day2["callbacks"].to_pandas()]) if "callbacks" in day2 else callbacks
    # (a call in the last 30 minutes of day 2 is answered on day 3, not simulated here)
    called = both.loc[both["CALL"] & (both["TIME"] < pd.Timestamp("2026-01-06T23:30:00+00:00")), ["USER", "TIME"]]
    assert len(called) > 20
    # each call is answered once, 30 minutes later (a delayed reaction per call)
    expected = Counter(zip(called["USER"], called["TIME"] + pd.Timedelta(minutes=30), strict=True))
    assert Counter(zip(callbacks["USER"], callbacks["TIME"], strict=True)) == expected


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("story: callback", "story: callbak", r"no story named 'callbak'; did you mean 'callback'\?"),
        ("state: away}", "state: gone}", r"no state of story 'visit' named 'gone'"),
        ("timer: null", "timer: null\n    activity: {per_day: 1}", r"a story without timer \(timer: null\) runs only"),
        (
            "relationship: users.shops, from: USER, named_as: N_SHOPS",
            "relationship: users.shop, from: USER, named_as: N_SHOPS",
            r"no relationship named 'users\.shop'; did you mean 'users\.shops'\?",
        ),
    ],
)
def test_bad_references_to_stories_states_and_relationships(tmp_path: Path, old: str, new: str, message: str) -> None:
    assert old in REACTIONS
    with pytest.raises(WorldFileError, match=r"w\.yaml:\d+:\d+: stories\..*" + message):
        load_world(_world(tmp_path, REACTIONS.replace(old, new)))


def test_select_one_weighted_by_an_attribute_of_the_to_population(tmp_path: Path) -> None:
    """Shops of weight 0 are never drawn; the others are (weights 0 or 1, half of each)."""
    text = (
        REACTIONS.replace(
            "  shops: {size: 30}\n",
            "  shops:\n    size: 30\n    attributes: {OPEN: {choice: {values: [0.0, 1.0]}}}\n",
        )
        .replace(
            "      - neighbourhood_size:",
            "      - select_one: {relationship: users.shops, from: USER, named_as: SHOP, weight: OPEN}\n"
            "      - neighbourhood_size:",
        )
        .replace("cols: [TIME, USER, TWO_SHOPS", "cols: [TIME, USER, SHOP, TWO_SHOPS")
    )
    circus = scenario_from_file(_world(tmp_path, text)).create()
    visits = circus.run("1D")["visits"].to_pandas()
    shops = circus.get_population("shops")
    open_ = shops.get_attribute("OPEN").get_values(visits["SHOP"].to_numpy()).to_numpy()
    assert len(visits) > 100 and (open_ == 1.0).all()
    bad = text.replace("weight: OPEN", "weight: OPN")
    with pytest.raises(WorldFileError, match=r"no attribute of population 'shops' named 'OPN'; did you mean 'OPEN'\?"):
        load_world(_world(tmp_path, bad, "bad.yaml"))


SCENARIOS = Path(__file__).resolve().parent.parent / "pipelines" / "scenarios"


@pytest.mark.parametrize(
    ("twin", "old", "new", "message"),
    [
        (
            "banking",
            "initial_state: offline",
            "initial_state: ofline",
            r"models\.banking_app\.state_machine\.initial_state: no state named 'ofline'; did you mean 'offline'\?",
        ),
        (
            "banking",
            "loggers: [transactions, balances]",
            "loggers: [transactions, balance]",
            r"transitions\.spending\.loggers\[1\]: no logger named 'balance'; did you mean 'balances'\?",
        ),
        (
            "banking",
            "banking:take_loan",
            "banking:take_a_loan",
            r"transitions\.take_loan\.action: cannot import 'pipelines\.scenarios\.banking:take_a_loan'",
        ),
        (
            "banking",
            "tick: {model: banking_app}",
            "tick: {model: banking}",
            r"operations\[0\]\.tick\.model: no state_machine model named 'banking'; did you mean 'banking_app'\?",
        ),
        ("banking", "probability: 70.0", "probability: 170.0", r"logout\.probability: 170\.0 is above the maximum 100"),
        ("banking", "round: 2", "round: -1", r"balance\.mapped\.round: -1 is negative"),
        (
            "point_of_sale",
            "generate: {dependent: {bulk: item_id}",
            "generate: {dependent: {bulk: item_ids}",
            r"generate\.dependent\.bulk: no generator named 'item_ids'; did you mean 'item_id'\?",
        ),
        (
            "point_of_sale",
            "items: new_items_ids}",
            "items: new_items_ids, item: X}",
            r"add_edges: give either item \(one edge per row\) or items \(a list field\)",
        ),
        (
            "point_of_sale",
            "size: {per: 100, min: 10}",
            "size: {per: 100, share: 0.1}",
            r"populations\.point_of_sale\.size: give either share or per",
        ),
        (
            "csv_flows",
            "churned_state: churned}",
            "churned_state: gone}",
            r"run_flows\.churned_state: no state of this story named 'gone'",
        ),
        (
            "csv_flows",
            "folder: csv_flows",
            "folder: no_such_folder",
            r"csv_flows\.folder: no folder '.*no_such_folder'",
        ),
        (
            "mobile_app",
            "churn_per_day: 0.01",
            "churn_per_day: -0.01",
            r"models\.engagement\.engagement\.config: .*churn_per_day must be a finite number >= 0",
        ),
        (
            "mobile_app",
            "user_sd: 0.8",
            "user_sd: 0.8\n        user_ds: 1",
            r"config\.user_ds: unknown key 'user_ds'; did you mean 'user_sd'\?",
        ),
        (
            "mobile_app",
            "engagement: {model: engagement, per_day: 2.0}",
            "engagement: {model: engagment, per_day: 2.0}",
            r"stories\.session\.engagement\.model: no engagement model named 'engagment'; did you mean 'engagement'\?",
        ),
        (
            "mobile_app",
            "engagement: {model: engagement, drift_every: 1D}",
            "engagement: {model: engagement, drift_every: 1D}\n    timer: {every: 1}",
            r"stories\.engagement\.timer: the drift story runs every drift_every: no timer",
        ),
    ],
)
def test_bad_models_and_generators_are_named_where_they_are_written(
    tmp_path: Path, twin: str, old: str, new: str, message: str
) -> None:
    text = (SCENARIOS / f"{twin}.yaml").read_text()
    assert old in text
    path = tmp_path / f"{twin}.yaml"
    path.write_text(text.replace(old, new).replace("folder: csv_flows", f"folder: {SCENARIOS / 'csv_flows'}"))
    with pytest.raises(WorldFileError, match=rf"{twin}\.yaml:\d+:\d+: .*{message}"):
        load_world(path)


MAPPED = """\
name: m
start: "2026-01-05T00:00:00+00:00"
step: 1h
seed: 3
populations:
  users:
    size: 4000
    attributes:
      TIER:
        mapped:
          generator: {choice: {values: [1, 2, 3], weights: [0.5, 0.3, 0.2]}}
          mapping: {1: bronze, 2: silver, 3: gold}
      SCORE:
        mapped:
          generator: {numpy: {method: normal, loc: 50, scale: 30}}
          multiply: 2
          add: -100
          clip: [-50, null]
          round: 1
"""


def test_mapped_generators_map_scale_clip_and_round(tmp_path: Path) -> None:
    circus = scenario_from_file(_world(tmp_path, MAPPED)).create(4000)
    users = circus.get_population("users")
    tier = pd.Series(np.asarray(users.get_attribute("TIER").values, dtype=object))
    shares = tier.value_counts(normalize=True)
    # 4,000 draws: a share's standard deviation is at most sqrt(0.25 / 4000) = 0.008; 4 sigma
    for value, weight in {"bronze": 0.5, "silver": 0.3, "gold": 0.2}.items():
        assert abs(shares[value] - weight) < 4 * np.sqrt(weight * (1 - weight) / 4000)
    score = np.asarray(users.get_attribute("SCORE").values, dtype=float)
    assert score.min() == -50  # clipped below: 2 * N(50, 30) - 100 = N(0, 60) is below -50 ~20% of the time
    assert np.array_equal(score, np.round(score, 1))
    # clipping leaves the median of N(0, 60) alone; its standard error is 1.2533 * 60 / sqrt(4000)
    assert abs(np.median(score)) < 4 * 1.2533 * 60 / np.sqrt(4000)


def test_a_value_missing_from_a_mapping_is_named(tmp_path: Path) -> None:
    text = MAPPED.replace("mapping: {1: bronze, 2: silver, 3: gold}", "mapping: {1: bronze, 2: silver}")
    with pytest.raises(
        CircusError, match=r"w\.yaml:\d+:\d+: populations\.users\.attributes\.TIER\.mapped: values \['3'\]"
    ):
        scenario_from_file(_world(tmp_path, text)).create(4000)


TABLES = """\
name: shop_world
start: "2026-01-05T00:00:00+00:00"
step: 1h
seed: 9
tables:
  products: {file: products.csv}
  shops: {file: shops.csv}
  stock: {file: stock.parquet}
generators:
  favourite: {choice: {table: products, values: SKU, weights: SHARE}}
populations:
  products: {table: products, id_column: SKU}
  shops: {table: shops, id_column: SHOP_ID, columns: [CITY]}
  customers:
    size: 3000
    attributes:
      FAVOURITE: {generator: favourite}
relationships:
  - {name: stock, from: shops, to: products, table: stock, from_column: SHOP, to_column: SKU, weight_column: QTY}
stories:
  buy:
    population: customers
    member_id_field: CUSTOMER
    activity: {per_day: 2}
    operations:
      - select_one: {population: shops, named_as: SHOP}
      - select_one: {relationship: shops.stock, from: SHOP, named_as: SKU}
      - lookup: {population: products, id_field: SKU, select: {PRICE: PRICE}}
      - lookup: {population: shops, id_field: SHOP, select: {CITY: CITY}}
      - log: {id: sales, cols: [CUSTOMER, SHOP, CITY, SKU, PRICE]}
"""


def _table_world(tmp_path: Path, text: str = TABLES) -> Path:
    pd.DataFrame(
        {"SKU": ["A1", "B2", "C3", "D4"], "NAME": ["apple", "bread", "cheese", "dates"],
         "PRICE": [0.5, 2.0, 7.25, 3.0], "SHARE": [0.4, 0.3, 0.2, 0.1]}
    ).to_csv(tmp_path / "products.csv", index=False)  # fmt: skip
    pd.DataFrame({"SHOP_ID": ["S1", "S2"], "CITY": ["Ghent", "Lyon"], "SIZE": [1, 2]}).to_csv(
        tmp_path / "shops.csv", index=False
    )
    stock = pd.DataFrame({"SHOP": ["S1", "S1", "S2", "S2", "S2"], "SKU": ["A1", "B2", "B2", "C3", "D4"]})
    stock.assign(QTY=[1.0, 3.0, 1.0, 1.0, 2.0]).to_parquet(tmp_path / "stock.parquet")
    return _world(tmp_path, text, "shop.yaml")


def test_populations_relationships_and_choices_from_csv_and_parquet_tables(tmp_path: Path) -> None:
    scenario = scenario_from_file(_table_world(tmp_path))
    circus = scenario.create(3000)
    products, shops = circus.get_population("products"), circus.get_population("shops")
    assert list(np.asarray(products.ids, dtype=object)) == ["A1", "B2", "C3", "D4"]
    assert set(products.attributes) == {"NAME", "PRICE", "SHARE"} and set(shops.attributes) == {"CITY"}
    assert list(np.asarray(products.get_attribute("PRICE").values)) == [0.5, 2.0, 7.25, 3.0]
    favourite = pd.Series(
        np.asarray(circus.get_population("customers").get_attribute("FAVOURITE").values, dtype=object)
    )
    shares = favourite.value_counts(normalize=True)
    for sku, share in {"A1": 0.4, "B2": 0.3, "C3": 0.2, "D4": 0.1}.items():  # 3,000 draws, 4 sigma
        assert abs(shares[sku] - share) < 4 * np.sqrt(share * (1 - share) / 3000)
    sales = circus.run("2D")["sales"].to_pandas()
    assert len(sales) > 5000
    pairs = set(zip(sales["SHOP"], sales["SKU"], strict=True))
    assert pairs == {("S1", "A1"), ("S1", "B2"), ("S2", "B2"), ("S2", "C3"), ("S2", "D4")}  # only what is stocked
    s1 = sales[sales["SHOP"] == "S1"]["SKU"].value_counts(normalize=True)
    assert abs(s1["B2"] - 0.75) < 4 * np.sqrt(0.75 * 0.25 / (sales["SHOP"] == "S1").sum())  # QTY 3 vs 1
    assert set(zip(sales["SHOP"], sales["CITY"], strict=True)) == {("S1", "Ghent"), ("S2", "Lyon")}


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("file: products.csv", "file: product.csv", r"tables\.products\.file: no file '.*product\.csv'"),
        (
            "id_column: SKU}",
            "id_column: SKUS}",
            r"populations\.products\.id_column: table 'products' has no column 'SKUS'; did you mean 'SKU'\?",
        ),
        ("weight_column: QTY", "weight_column: QTTY", r"relationships\[0\]\.weight_column: .*no column 'QTTY'"),
        (
            "values: SKU, weights: SHARE",
            "values: SKU, weights: SHAR",
            r"generators\.favourite\.choice\.weights: .*did you mean 'SHARE'",
        ),
        (
            "table: stock,",
            "table: stocks,",
            r"relationships\[0\]\.table: no table named 'stocks'; did you mean 'stock'\?",
        ),
        (
            "{table: shops, id_column",
            "{table: shops, size: 3, id_column",
            r"populations\.shops: a population from a table",
        ),
    ],
)
def test_bad_tables_are_named_where_they_are_used(tmp_path: Path, old: str, new: str, message: str) -> None:
    assert old in TABLES
    path = _table_world(tmp_path, TABLES.replace(old, new))
    with pytest.raises(WorldFileError, match=r"shop\.yaml:\d+:\d+: " + message):
        load_world(path)


ARRIVALS = """\
name: visits
start: "2026-01-05T00:00:00+00:00"
step: 1h
seed: 11
tables:
  countries: {builtin: countries}
populations:
  users:
    size: 5000
    attributes:
      COUNTRY: {choice: {table: countries, values: code, weights: potential_users}}
stories:
  visit:
    population: users
    member_id_field: USER
    arrivals: {per_member_per_day: 2.0, segment_attribute: COUNTRY, timestamp_field: TIME, segment_field: SEGMENT}
    operations:
      - lookup: {population: users, id_field: USER, select: {COUNTRY: COUNTRY}}
      - log: {id: visits, cols: [TIME, USER, SEGMENT, COUNTRY]}
"""


def test_arrivals_follow_the_sun_in_each_countrys_local_time(tmp_path: Path) -> None:
    from circus_core.models import read_countries

    visits = scenario_from_file(_world(tmp_path, ARRIVALS)).create(5000).run("2D")["visits"].to_pandas()
    # 2 arrivals per member per day: Poisson(20,000) over two days, sd ~141; 5 sd
    assert abs(len(visits) - 20_000) < 5 * math.sqrt(20_000)
    assert (visits["SEGMENT"] == visits["COUNTRY"]).all()  # each arrival picks a member of its segment
    offsets = read_countries().set_index("code")["utc_offset_seconds"]
    local = (visits["TIME"].dt.hour * 3600 + visits["TIME"].dt.minute * 60).to_numpy() + offsets[
        visits["SEGMENT"]
    ].to_numpy()
    angle = (local % 86_400) / 86_400 * 2 * np.pi
    peak = (np.degrees(np.arctan2(np.sin(angle).mean(), np.cos(angle).mean())) / 15) % 24
    # the default cosine peaks at 16:00 local time; the circular mean's sd here is a few minutes
    assert abs(peak - 16) < 0.5


def test_arrivals_over_a_table_of_segments_with_an_hourly_curve(tmp_path: Path) -> None:
    pd.DataFrame({"region": ["north", "east"], "tz": ["+00:00", "+08:00"], "w": [3.0, 1.0]}).to_csv(
        tmp_path / "regions.csv", index=False
    )
    text = (
        ARRIVALS.replace("countries: {builtin: countries}", "regions: {file: regions.csv}")
        .replace(
            "{choice: {table: countries, values: code, weights: potential_users}}", "{choice: {values: [north, east]}}"
        )
        .replace(
            "segment_attribute: COUNTRY,",
            "segment_attribute: COUNTRY, segments: {table: regions, segment_column: region, utc_offset_column: tz, "
            "weight_column: w}, curve: {hourly: [0,0,0,0,0,0,0,0,0,0,0,0,1,0,0,0,0,0,0,0,0,0,0,0]},",
        )
    )
    visits = scenario_from_file(_world(tmp_path, text)).create(5000).run("1D")["visits"].to_pandas()
    shares = visits["SEGMENT"].value_counts(normalize=True)
    assert abs(shares["north"] - 0.75) < 5 * math.sqrt(0.75 * 0.25 / len(visits))
    hours = visits.groupby("SEGMENT")["TIME"].apply(lambda t: set(t.dt.hour))
    assert hours["north"] == {12} and hours["east"] == {4}  # 12:00 local: UTC+0 and UTC+8


def test_an_arrival_story_takes_no_timer_and_names_its_segment_attribute(tmp_path: Path) -> None:
    with pytest.raises(WorldFileError, match=r"stories\.visit\.timer: an arrival story is driven by its arrivals"):
        load_world(_world(tmp_path, ARRIVALS.replace("    arrivals:", "    timer: {every: 1}\n    arrivals:")))
    with pytest.raises(WorldFileError, match=r"arrivals\.segment_attribute: no attribute .* named 'COUNTRYY'"):
        load_world(_world(tmp_path, ARRIVALS.replace("segment_attribute: COUNTRY", "segment_attribute: COUNTRYY")))
    with pytest.raises(WorldFileError, match=r"tables\.countries\.builtin: 'country' is not one of countries"):
        load_world(_world(tmp_path, ARRIVALS.replace("builtin: countries", "builtin: country")))


STATES_AND_DELAYS = """\
name: moods
start: "2026-01-05T00:00:00+00:00"
step: 1h
seed: 5
populations:
  users: {size: 2000}
stories:
  chatty:
    population: users
    member_id_field: USER
    activity: {per_day: 1}
    states: {excited: {activity: {per_day: 10}}}
    default_state: calm                      # the default state's name: everybody starts calm, 1 a day
    operations:
      - get_state: {story: chatty, member_id_field: USER, named_as: MOOD}
      - timestamp: {named_as: TIME}
      - generate: {generator: {numpy: {method: random}}, named_as: U}
      - apply: {function: "numpy:sqrt", inputs: [U], named_as: ROOT}
      - log: {id: chats, cols: [TIME, USER, MOOD]}
      - force_act_next:
          {story: answer, member_id_field: USER, delay: {numpy: {method: uniform, low: 60, high: 120}}, delay_unit: 1s}
  answer:
    population: users
    member_id_field: USER
    timer: null
    operations:
      - timestamp: {named_as: TIME}
      - log: {id: answers, cols: [TIME, USER]}
"""


def test_default_state_get_state_and_delays_drawn_by_a_generator(tmp_path: Path) -> None:
    logs = scenario_from_file(_world(tmp_path, STATES_AND_DELAYS)).create(2000).run("1D")
    chats, answers = logs["chats"].to_pandas(), logs["answers"].to_pandas()
    # calm: 1 a day for 2,000 members, Poisson(2,000): 5 sd = 224
    assert abs(len(chats) - 2000) < 5 * math.sqrt(2000)
    assert set(chats["MOOD"]) == {"calm"}
    # each chat is answered once, 60 to 120 s later (a uniform delay in seconds); the last ones spill over
    delays = []
    for user, group in chats.groupby("USER"):
        replies = answers[answers["USER"] == user]["TIME"].sort_values().to_numpy()
        causes = group["TIME"].sort_values().to_numpy()[: len(replies)]
        delays += list((replies - causes) / np.timedelta64(1, "s"))
    assert len(answers) >= len(chats) - 10
    assert min(delays) >= 60 and max(delays) <= 120
    assert abs(np.mean(delays) - 90) < 5 * (60 / math.sqrt(12)) / math.sqrt(len(delays))


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        (
            "method: gamma",
            "method: gama",
            r"activity\.per_day\.numpy\.method: .*no method 'gama'; did you mean 'gamma'\?",
        ),
        (
            "shape: 2.0, scale: 0.75",
            "shap: 2.0, scale: 0.75",
            r"activity\.per_day\.numpy: .*unexpected keyword argument 'shap'",
        ),
        (
            "method: first_name, pool_size: 500",
            "method: frist_name, pool_size: 500",
            r"NAME\.faker\.method: .*no method 'frist_name' .*; did you mean 'first_name'\?",
        ),
    ],
)
def test_numpy_and_faker_mistakes_are_found_before_the_world_runs(
    tmp_path: Path, old: str, new: str, message: str
) -> None:
    text = COFFEE.read_text()
    assert old in text
    with pytest.raises(WorldFileError, match=r"coffee\.yaml:\d+:\d+: .*" + message):
        load_world(_world(tmp_path, text.replace(old, new), "coffee.yaml"))


def test_a_world_starts_at_a_midnight_utc(tmp_path: Path) -> None:
    """Days are UTC days (one Dagster partition each): a local midnight elsewhere is refused at
    load, in a world file and in a Python scenario, before it can break the code location."""
    from circus_core import CircusError
    from pipelines.scenarios.base import Scenario

    text = BASE.replace('start: "2026-01-05T00:00:00+00:00"', 'start: "2026-01-05T00:00:00+01:00"')
    with pytest.raises(
        WorldFileError, match=r"w\.yaml:2:8: start: .* a world starts at a midnight UTC .*'2026-01-04T00"
    ):
        load_world(_world(tmp_path, text))
    with pytest.raises(CircusError, match=r"scenario 'x': start '2026-01-05T00:00:00\+01:00' is 2026-01-04T23:00:00"):
        Scenario("x", "d", "2026-01-05T00:00:00+01:00", "1h", 1, 10, lambda c, n: None, lambda c: None)


HELPERS = """\
import numpy as np


def double(values):
    return values * 2


def shout(values):
    return np.char.upper(np.asarray(values, dtype=str))
"""


def test_functions_from_a_module_next_to_the_world_travel_with_it(tmp_path: Path) -> None:
    """``apply: {function: helpers:double}`` with helpers.py beside the world file: found at load,
    kept in the world, so a process without the file (a Dask worker) runs it the same."""
    import pickle

    (tmp_path / "helpers.py").write_text(HELPERS)
    text = BASE.replace(
        "    size: 100\n",
        "    size: 100\n    attributes:\n"
        "      LOUD: {mapped: {generator: {choice: {values: [a, b]}}, function: 'helpers:shout'}}\n",
    ).replace(
        "      - log: {id: visits, cols: [TIME, USER]}",
        "      - generate: {generator: {numpy: {method: integers, low: 0, high: 10}}, named_as: N}\n"
        "      - apply: {function: 'helpers:double', inputs: [N], named_as: N2}\n"
        "      - lookup: {population: users, id_field: USER, select: {LOUD: LOUD}}\n"
        "      - log: {id: visits, cols: [TIME, USER, N, N2, LOUD]}",
    )
    (tmp_path / "world.pickle").write_bytes(pickle.dumps(scenario_from_file(_world(tmp_path, text))))
    (tmp_path / "helpers.py").unlink()
    probe = (
        "import pickle, sys\n"
        "scenario = pickle.load(open('world.pickle', 'rb'))\n"
        "scenario.create(100).run('1D')['visits'].to_pandas().to_parquet('visits.parquet')\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    visits = pd.read_parquet(tmp_path / "visits.parquet")
    assert len(visits) > 100 and (visits["N2"] == 2 * visits["N"]).all()
    assert set(visits["LOUD"]) == {"A", "B"}


def test_a_helper_module_that_fails_is_named_where_it_is_used(tmp_path: Path) -> None:
    (tmp_path / "helpers.py").write_text("def double(:\n")
    text = BASE.replace(
        "      - log: {id: visits, cols: [TIME, USER]}",
        "      - apply: {function: 'helpers:double', inputs: [USER], named_as: X}\n"
        "      - log: {id: visits, cols: [TIME, USER]}",
    )
    with pytest.raises(WorldFileError, match=r"w\.yaml:\d+:\d+: .*apply\.function: importing 'helpers:double' failed"):
        load_world(_world(tmp_path, text))
