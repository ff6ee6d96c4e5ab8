CREATE OR REPLACE VIEW events AS
SELECT "seq", "event_id", "stream_id", "stream_version", "event_type", "occurred_at", "recorded_at", "quantity", "rarity", "origin"
FROM read_parquet([
    '<STORE>/events/occurred_on=2024-03-01/part-00000-<UUID>-c000.zstd.parquet',
    '<STORE>/events/occurred_on=2024-03-02/part-00000-<UUID>-c000.zstd.parquet',
    '<STORE>/events/occurred_on=2024-03-01/part-00000-<UUID>-c000.zstd.parquet',
    '<STORE>/events/occurred_on=2024-03-03/part-00000-<UUID>-c000.zstd.parquet'
], hive_partitioning = false);

CREATE OR REPLACE MACRO as_of_seq(x) AS CASE
    WHEN x IS NULL THEN CAST(NULL AS BIGINT)
    WHEN typeof(x) IN ('TINYINT', 'SMALLINT', 'INTEGER', 'BIGINT', 'HUGEINT', 'UTINYINT', 'USMALLINT', 'UINTEGER', 'UBIGINT', 'UHUGEINT') THEN CASE
        WHEN TRY_CAST(x AS HUGEINT) < 0 THEN error('as_of=' || CAST(x AS VARCHAR) || ': a seq cut cannot be negative')
        ELSE TRY_CAST(x AS BIGINT)  -- NULL beyond BIGINT: no cut
    END
    WHEN typeof(x) = 'VARCHAR' AND regexp_full_match(trim(CAST(x AS VARCHAR), E'\x20\x09\x0a\x0d'), '[0-9]+') THEN TRY_CAST(trim(CAST(x AS VARCHAR), E'\x20\x09\x0a\x0d') AS BIGINT)
    WHEN typeof(x) IN ('VARCHAR', 'DATE', 'TIMESTAMP WITH TIME ZONE', 'TIMESTAMP', 'TIMESTAMP_S', 'TIMESTAMP_MS', 'TIMESTAMP_NS') THEN CAST(NULL AS BIGINT)
    ELSE error('as_of is a seq (an integer), a TIMESTAMPTZ, a TIMESTAMP (read as UTC), a DATE or an ISO string, not '
               || typeof(x))
END;

CREATE OR REPLACE MACRO as_of_time(x) AS CASE
    WHEN x IS NULL OR typeof(x) NOT IN ('VARCHAR', 'DATE', 'TIMESTAMP WITH TIME ZONE', 'TIMESTAMP', 'TIMESTAMP_S', 'TIMESTAMP_MS', 'TIMESTAMP_NS')
        THEN CAST(NULL AS TIMESTAMPTZ)
    WHEN typeof(x) = 'TIMESTAMP WITH TIME ZONE' THEN TRY_CAST(x AS TIMESTAMPTZ)
    WHEN typeof(x) IN ('TIMESTAMP', 'TIMESTAMP_S', 'TIMESTAMP_MS', 'TIMESTAMP_NS') THEN timezone('UTC', TRY_CAST(x AS TIMESTAMP))
    WHEN typeof(x) = 'DATE' THEN timezone('UTC', CAST(TRY_CAST(x AS DATE) AS TIMESTAMP) + INTERVAL 1 DAY - INTERVAL 1 MICROSECOND)
    WHEN regexp_full_match(trim(CAST(x AS VARCHAR), E'\x20\x09\x0a\x0d'), '[0-9]+') THEN CAST(NULL AS TIMESTAMPTZ)
    WHEN regexp_full_match(trim(CAST(x AS VARCHAR), E'\x20\x09\x0a\x0d'), '([0-9]{3}[1-9]|[0-9]{2}[1-9][0-9]|[0-9][1-9][0-9]{2}|[1-9][0-9]{3})-[0-9]{2}-[0-9]{2}') AND TRY_CAST(trim(CAST(x AS VARCHAR), E'\x20\x09\x0a\x0d') AS DATE) IS NOT NULL
        THEN timezone('UTC', CAST(TRY_CAST(trim(CAST(x AS VARCHAR), E'\x20\x09\x0a\x0d') AS DATE) AS TIMESTAMP) + INTERVAL 1 DAY - INTERVAL 1 MICROSECOND)
    WHEN regexp_full_match(trim(CAST(x AS VARCHAR), E'\x20\x09\x0a\x0d'), '([0-9]{3}[1-9]|[0-9]{2}[1-9][0-9]|[0-9][1-9][0-9]{2}|[1-9][0-9]{3})-[0-9]{2}-[0-9]{2}[T ]([01][0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9](\.[0-9]{1,6})?)?(Z|[+-]([01][0-9]|2[0-3])(:?[0-5][0-9])?)') AND TRY_CAST(trim(CAST(x AS VARCHAR), E'\x20\x09\x0a\x0d') AS TIMESTAMPTZ) IS NOT NULL
        THEN TRY_CAST(trim(CAST(x AS VARCHAR), E'\x20\x09\x0a\x0d') AS TIMESTAMPTZ)
    WHEN regexp_full_match(trim(CAST(x AS VARCHAR), E'\x20\x09\x0a\x0d'), '([0-9]{3}[1-9]|[0-9]{2}[1-9][0-9]|[0-9][1-9][0-9]{2}|[1-9][0-9]{3})-[0-9]{2}-[0-9]{2}[T ]([01][0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9](\.[0-9]{1,6})?)?') AND TRY_CAST(trim(CAST(x AS VARCHAR), E'\x20\x09\x0a\x0d') AS TIMESTAMP) IS NOT NULL
        THEN error('as_of=''' || CAST(x AS VARCHAR) || ''' has no time zone; add one, e.g. ' || trim(CAST(x AS VARCHAR), E'\x20\x09\x0a\x0d') || '+00:00')
    ELSE error('as_of=''' || CAST(x AS VARCHAR) || ''' is not a seq, an ISO date or an ISO timestamp')
END;

CREATE OR REPLACE MACRO events_as_of(x) AS TABLE
SELECT * FROM events
WHERE seq <= coalesce(as_of_seq(x), 9223372036854775807)
  AND occurred_at <= coalesce(as_of_time(x), TIMESTAMPTZ 'infinity');

CREATE OR REPLACE VIEW commits AS
SELECT CAST("version" AS BIGINT) AS "version", CAST("first_seq" AS BIGINT) AS "first_seq", CAST("last_seq" AS BIGINT) AS "last_seq", CAST("event_count" AS BIGINT) AS "event_count", CAST("recorded_at" AS TIMESTAMPTZ) AS "recorded_at", CAST("operation" AS VARCHAR) AS "operation", CAST("committed_at" AS TIMESTAMPTZ) AS "committed_at", CAST("idempotency_key" AS VARCHAR) AS "idempotency_key"
FROM (VALUES
    (0, NULL, NULL, NULL, NULL, 'create', '<TIME>', NULL),
    (1, 1, 2, 2, '<TIME>', 'append', '<TIME>', NULL),
    (2, 3, 3, 1, '<TIME>', 'append', '<TIME>', NULL),
    (3, 4, 4, 1, '<TIME>', 'append', '<TIME>', NULL)
) AS v("version", "first_seq", "last_seq", "event_count", "recorded_at", "operation", "committed_at", "idempotency_key");

CREATE OR REPLACE VIEW snapshots AS
SELECT CAST("seq" AS BIGINT) AS "seq", CAST("delta_version" AS BIGINT) AS "delta_version", CAST("rows" AS BIGINT) AS "rows", CAST("state_version" AS BIGINT) AS "state_version", CAST("created_at" AS TIMESTAMPTZ) AS "created_at", CAST("max_occurred_at" AS TIMESTAMPTZ) AS "max_occurred_at", CAST("file" AS VARCHAR) AS "file", CAST("sha256" AS VARCHAR) AS "sha256", CAST("usable" AS BOOLEAN) AS "usable"
FROM (VALUES
    (3, 2, 2, 3, '<TIME>', '<TIME>', 'v3-seq000000000000003.parquet', '<SHA256>', TRUE)
) AS v("seq", "delta_version", "rows", "state_version", "created_at", "max_occurred_at", "file", "sha256", "usable");

CREATE OR REPLACE VIEW inventory AS
SELECT
  "item",
  "quantity",
  "rarity",
  "origin",
  "first_added_at",
  "last_changed_at",
  "stream_version"
FROM (
  SELECT
    CAST("item" AS TEXT) AS "item",
    CAST("quantity" AS BIGINT) AS "quantity",
    CAST("rarity" AS TEXT) AS "rarity",
    CAST("origin" AS TEXT) AS "origin",
    CAST("first_added_at" AS TIMESTAMPTZ) AS "first_added_at",
    CAST("last_changed_at" AS TIMESTAMPTZ) AS "last_changed_at",
    CAST("stream_version" AS BIGINT) AS "stream_version"
  FROM (
    SELECT
  "item" AS "item",
  SUM("quantity") AS "quantity",
  ARG_MAX_NULL("rarity", "__rarity_seq") AS "rarity",
  MAX("__rarity_seq") AS "__rarity_seq",
  ARG_MAX_NULL("origin", "__origin_seq") AS "origin",
  MAX("__origin_seq") AS "__origin_seq",
  MIN("first_added_at") AS "first_added_at",
  MAX("last_changed_at") AS "last_changed_at",
  MAX("stream_version") AS "stream_version"
FROM (
  SELECT
    "item",
    "quantity",
    "rarity",
    "__rarity_seq",
    "origin",
    "__origin_seq",
    "first_added_at",
    "last_changed_at",
    "stream_version"
  FROM (
    SELECT CAST("item" AS VARCHAR) AS "item", CAST("quantity" AS BIGINT) AS "quantity", CAST("rarity" AS VARCHAR) AS "rarity", CAST("__rarity_seq" AS BIGINT) AS "__rarity_seq", CAST("origin" AS VARCHAR) AS "origin", CAST("__origin_seq" AS BIGINT) AS "__origin_seq", CAST("first_added_at" AS TIMESTAMPTZ) AS "first_added_at", CAST("last_changed_at" AS TIMESTAMPTZ) AS "last_changed_at", CAST("stream_version" AS BIGINT) AS "stream_version" FROM read_parquet(['<STORE>/snapshots/v3-seq000000000000003.parquet'], hive_partitioning = false)
) AS base
  UNION ALL
  SELECT
    "item",
    "quantity",
    "rarity",
    "__rarity_seq",
    "origin",
    "__origin_seq",
    "first_added_at",
    "last_changed_at",
    "stream_version"
  FROM (
    SELECT
      stream_id AS "item",
      COALESCE(
        SUM(
          CASE event_type
            WHEN 'item_added'
            THEN quantity
            WHEN 'item_removed'
            THEN -quantity
            ELSE 0
          END
        ),
        0
      ) AS "quantity",
      ARG_MAX_NULL(rarity, stream_version) FILTER(WHERE
        NOT rarity IS NULL) AS "rarity",
      MAX(stream_version) FILTER(WHERE
        NOT rarity IS NULL) AS "__rarity_seq",
      ARG_MAX_NULL(origin, stream_version) FILTER(WHERE
        NOT origin IS NULL) AS "origin",
      MAX(stream_version) FILTER(WHERE
        NOT origin IS NULL) AS "__origin_seq",
      MIN(occurred_at) FILTER(WHERE
        event_type = 'item_added') AS "first_added_at",
      MAX(occurred_at) AS "last_changed_at",
      MAX(stream_version) AS "stream_version"
    FROM read_parquet(['<STORE>/events/occurred_on=2024-03-03/part-00000-<UUID>-c000.zstd.parquet'], hive_partitioning = false)
    GROUP BY
      stream_id
) AS tail
) AS "stored"
GROUP BY
  "item"
  ) AS merged
) AS finished
WHERE
  quantity > 0
ORDER BY
  "item";

CREATE OR REPLACE MACRO inventory_as_of(x) AS TABLE
SELECT
  "item",
  "quantity",
  "rarity",
  "origin",
  "first_added_at",
  "last_changed_at",
  "stream_version"
FROM (
  SELECT
    CAST("item" AS TEXT) AS "item",
    CAST("quantity" AS BIGINT) AS "quantity",
    CAST("rarity" AS TEXT) AS "rarity",
    CAST("origin" AS TEXT) AS "origin",
    CAST("first_added_at" AS TIMESTAMPTZ) AS "first_added_at",
    CAST("last_changed_at" AS TIMESTAMPTZ) AS "last_changed_at",
    CAST("stream_version" AS BIGINT) AS "stream_version"
  FROM (
    SELECT
  "item" AS "item",
  SUM("quantity") AS "quantity",
  ARG_MAX_NULL("rarity", "__rarity_seq") AS "rarity",
  MAX("__rarity_seq") AS "__rarity_seq",
  ARG_MAX_NULL("origin", "__origin_seq") AS "origin",
  MAX("__origin_seq") AS "__origin_seq",
  MIN("first_added_at") AS "first_added_at",
  MAX("last_changed_at") AS "last_changed_at",
  MAX("stream_version") AS "stream_version"
FROM (
  SELECT
    "item",
    "quantity",
    "rarity",
    "__rarity_seq",
    "origin",
    "__origin_seq",
    "first_added_at",
    "last_changed_at",
    "stream_version"
  FROM (
    SELECT CAST("item" AS VARCHAR) AS "item", CAST("quantity" AS BIGINT) AS "quantity", CAST("rarity" AS VARCHAR) AS "rarity", CAST("__rarity_seq" AS BIGINT) AS "__rarity_seq", CAST("origin" AS VARCHAR) AS "origin", CAST("__origin_seq" AS BIGINT) AS "__origin_seq", CAST("first_added_at" AS TIMESTAMPTZ) AS "first_added_at", CAST("last_changed_at" AS TIMESTAMPTZ) AS "last_changed_at", CAST("stream_version" AS BIGINT) AS "stream_version" FROM read_parquet(['<STORE>/snapshots/v3-seq000000000000003.parquet'], hive_partitioning = false) WHERE CASE WHEN 3 <= coalesce(as_of_seq(x), 9223372036854775807) AND CAST('<TIME>' AS TIMESTAMPTZ) <= coalesce(as_of_time(x), TIMESTAMPTZ 'infinity') THEN 3 ELSE 0 END = 3
) AS base
  UNION ALL
  SELECT
    "item",
    "quantity",
    "rarity",
    "__rarity_seq",
    "origin",
    "__origin_seq",
    "first_added_at",
    "last_changed_at",
    "stream_version"
  FROM (
    SELECT
      stream_id AS "item",
      COALESCE(
        SUM(
          CASE event_type
            WHEN 'item_added'
            THEN quantity
            WHEN 'item_removed'
            THEN -quantity
            ELSE 0
          END
        ),
        0
      ) AS "quantity",
      ARG_MAX_NULL(rarity, stream_version) FILTER(WHERE
        NOT rarity IS NULL) AS "rarity",
      MAX(stream_version) FILTER(WHERE
        NOT rarity IS NULL) AS "__rarity_seq",
      ARG_MAX_NULL(origin, stream_version) FILTER(WHERE
        NOT origin IS NULL) AS "origin",
      MAX(stream_version) FILTER(WHERE
        NOT origin IS NULL) AS "__origin_seq",
      MIN(occurred_at) FILTER(WHERE
        event_type = 'item_added') AS "first_added_at",
      MAX(occurred_at) AS "last_changed_at",
      MAX(stream_version) AS "stream_version"
    FROM events
    WHERE
      (
        seq > CASE
          WHEN 3 <= COALESCE(AS_OF_SEQ(x), 9223372036854775807)
          AND CAST('<TIME>' AS TIMESTAMPTZ) <= COALESCE(AS_OF_TIME(x), CAST('infinity' AS TIMESTAMPTZ))
          THEN 3
          ELSE 0
        END
      )
      AND (
        seq <= COALESCE(AS_OF_SEQ(x), 9223372036854775807)
      )
      AND (
        occurred_at <= COALESCE(AS_OF_TIME(x), CAST('infinity' AS TIMESTAMPTZ))
      )
    GROUP BY
      stream_id
) AS tail
) AS "stored"
GROUP BY
  "item"
  ) AS merged
) AS finished
WHERE
  quantity > 0
ORDER BY
  "item";

CREATE OR REPLACE MACRO inventory_compare(x, y) AS TABLE
SELECT
    coalesce(here.item, there.item) AS item,
    coalesce(here.quantity, 0) AS quantity,
    coalesce(there.quantity, 0) AS other_quantity,
    coalesce(there.quantity, 0) - coalesce(here.quantity, 0) AS change
FROM inventory_as_of(x) AS here
FULL JOIN inventory_as_of(y) AS there ON here.item = there.item
ORDER BY item;

CREATE OR REPLACE VIEW projections AS
SELECT CAST("name" AS VARCHAR) AS "name", CAST("mode" AS VARCHAR) AS "mode", CAST("checkpoint" AS BIGINT) AS "checkpoint", CAST("lag" AS BIGINT) AS "lag", CAST("table_version" AS BIGINT) AS "table_version", CAST("rows" AS BIGINT) AS "rows", CAST("built_at" AS TIMESTAMPTZ) AS "built_at", CAST("view" AS VARCHAR) AS "view"
FROM (VALUES
    ('most_collected_items', 'merge', 4, 0, 0, 2, '<TIME>', 'stored + tail'),
    ('item_origins', 'merge', NULL, NULL, NULL, NULL, NULL, 'folded from the log (no usable table)'),
    ('daily_flows', 'merge', NULL, NULL, NULL, NULL, NULL, 'folded from the log (no usable table)'),
    ('daily_stock', 'merge', NULL, NULL, NULL, NULL, NULL, 'folded from the log (no usable table)'),
    ('stockouts', 'rebuild', NULL, NULL, NULL, NULL, NULL, 'refused: not built'),
    ('top_movers', 'from_day', NULL, NULL, NULL, NULL, NULL, 'refused: not built')
) AS v("name", "mode", "checkpoint", "lag", "table_version", "rows", "built_at", "view");

CREATE OR REPLACE VIEW "most_collected_items" AS
SELECT
  CAST("item" AS TEXT) AS "item",
  CAST("total_added" AS BIGINT) AS "total_added",
  CAST("times_added" AS BIGINT) AS "times_added"
FROM (
  SELECT
  "item" AS "item",
  SUM("total_added") AS "total_added",
  SUM("times_added") AS "times_added"
FROM (
  SELECT
    "item",
    "total_added",
    "times_added"
  FROM (
    SELECT "item", "total_added", "times_added" FROM read_parquet(['<STORE>/projections/most_collected_items/part-00000-<UUID>-c000.zstd.parquet'], hive_partitioning = false)
) AS base
  UNION ALL
  SELECT
    "item",
    "total_added",
    "times_added"
  FROM (
    SELECT
      stream_id AS "item",
      COALESCE(SUM(quantity), 0) AS "total_added",
      COUNT(*) AS "times_added"
    FROM events
    WHERE
      event_type IN ('item_added') AND (
        seq > 4
      )
    GROUP BY
      stream_id
) AS tail
) AS "stored"
GROUP BY
  "item"
) AS merged
ORDER BY
  "item";

CREATE OR REPLACE VIEW "item_origins" AS
SELECT
  CAST("item" AS TEXT) AS "item",
  CAST("origins" AS TEXT[]) AS "origins"
FROM (
  SELECT
  "item" AS "item",
  COALESCE(LIST_SORT(LIST_DISTINCT(FLATTEN(ARRAY_AGG("origins")))), []) AS "origins"
FROM (
  SELECT
    "item",
    "origins"
  FROM (
    SELECT CAST(NULL AS VARCHAR) AS "item", CAST(NULL AS VARCHAR[]) AS "origins" LIMIT 0
) AS base
  UNION ALL
  SELECT
    "item",
    "origins"
  FROM (
    SELECT
      stream_id AS "item",
      COALESCE(LIST_SORT(LIST_DISTINCT(ARRAY_AGG(origin))), []) AS "origins"
    FROM events
    WHERE
      event_type IN ('item_added') AND (
        seq > 0
      )
    GROUP BY
      stream_id
) AS tail
) AS "stored"
GROUP BY
  "item"
) AS merged
ORDER BY
  "item";

CREATE OR REPLACE VIEW "daily_flows" AS
SELECT
  CAST("day" AS DATE) AS "day",
  CAST("item" AS TEXT) AS "item",
  CAST("rarity" AS TEXT) AS "rarity",
  CAST("origin" AS TEXT) AS "origin",
  CAST("added" AS BIGINT) AS "added",
  CAST("removed" AS BIGINT) AS "removed",
  CAST("events" AS BIGINT) AS "events",
  CAST(added - removed AS BIGINT) AS "net_change"
FROM (
  SELECT
  "day" AS "day",
  "item" AS "item",
  "rarity" AS "rarity",
  "origin" AS "origin",
  SUM("added") AS "added",
  SUM("removed") AS "removed",
  SUM("events") AS "events"
FROM (
  SELECT
    "day",
    "item",
    "rarity",
    "origin",
    "added",
    "removed",
    "events"
  FROM (
    SELECT CAST(NULL AS DATE) AS "day", CAST(NULL AS VARCHAR) AS "item", CAST(NULL AS VARCHAR) AS "rarity", CAST(NULL AS VARCHAR) AS "origin", CAST(NULL AS BIGINT) AS "added", CAST(NULL AS BIGINT) AS "removed", CAST(NULL AS BIGINT) AS "events" LIMIT 0
) AS base
  UNION ALL
  SELECT
    "day",
    "item",
    "rarity",
    "origin",
    "added",
    "removed",
    "events"
  FROM (
    SELECT
      CAST(occurred_at AS DATE) AS "day",
      stream_id AS "item",
      rarity AS "rarity",
      origin AS "origin",
      COALESCE(SUM(quantity) FILTER(WHERE
        event_type = 'item_added'), 0) AS "added",
      COALESCE(SUM(quantity) FILTER(WHERE
        event_type = 'item_removed'), 0) AS "removed",
      COUNT(*) AS "events"
    FROM events
    WHERE
      (
        seq > 0
      )
    GROUP BY
      CAST(occurred_at AS DATE),
      stream_id,
      rarity,
      origin
) AS tail
) AS "stored"
GROUP BY
  "day",
  "item",
  "rarity",
  "origin"
) AS merged
ORDER BY
  "day",
  "item",
  "rarity",
  "origin";

CREATE OR REPLACE VIEW "daily_stock" AS
SELECT
  CAST("item" AS TEXT) AS "item",
  CAST("day" AS DATE) AS "day",
  CAST("added" AS BIGINT) AS "added",
  CAST("removed" AS BIGINT) AS "removed",
  CAST(added - removed AS BIGINT) AS "net_change",
  CAST(SUM(added - removed) OVER (PARTITION BY item ORDER BY day ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS BIGINT) AS "stock"
FROM (
  SELECT
  "item" AS "item",
  "day" AS "day",
  SUM("added") AS "added",
  SUM("removed") AS "removed"
FROM (
  SELECT
    "item",
    "day",
    "added",
    "removed"
  FROM (
    SELECT CAST(NULL AS VARCHAR) AS "item", CAST(NULL AS DATE) AS "day", CAST(NULL AS BIGINT) AS "added", CAST(NULL AS BIGINT) AS "removed" LIMIT 0
) AS base
  UNION ALL
  SELECT
    "item",
    "day",
    "added",
    "removed"
  FROM (
    SELECT
      stream_id AS "item",
      CAST(occurred_at AS DATE) AS "day",
      COALESCE(SUM(quantity) FILTER(WHERE
        event_type = 'item_added'), 0) AS "added",
      COALESCE(SUM(quantity) FILTER(WHERE
        event_type = 'item_removed'), 0) AS "removed"
    FROM events
    WHERE
      (
        seq > 0
      )
    GROUP BY
      stream_id,
      CAST(occurred_at AS DATE)
) AS tail
) AS "stored"
GROUP BY
  "item",
  "day"
) AS merged
ORDER BY
  "item",
  "day";

CREATE OR REPLACE VIEW "stockouts" AS
SELECT CAST(NULL AS VARCHAR) AS "refused" WHERE FALSE
UNION ALL
SELECT CAST(error('eventlog: projection ''stockouts'' has not been built yet; run `eventlog project update stockouts` (or Inventory.update_projections())') AS VARCHAR) AS "refused";

CREATE OR REPLACE VIEW "top_movers" AS
SELECT CAST(NULL AS VARCHAR) AS "refused" WHERE FALSE
UNION ALL
SELECT CAST(error('eventlog: projection ''top_movers'' has not been built yet; run `eventlog project update top_movers` (or Inventory.update_projections())') AS VARCHAR) AS "refused";
