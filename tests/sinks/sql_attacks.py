"""Statements that must never run through ``drifthouse sql`` or the worker's SQL endpoint.

Each is a template: ``{dir}`` is a folder the test watches for new files, ``{secret}`` a file
holding a marker, ``{url}`` a local HTTP server that records every request it gets.
"""

from __future__ import annotations

import pytest

ATTACKS = [
    # writes and DDL
    pytest.param("DROP TABLE metrics", id="drop"),
    pytest.param("DROP DATABASE {db}", id="drop-database"),
    pytest.param("TRUNCATE TABLE metrics", id="truncate"),
    pytest.param("ALTER TABLE metrics DELETE WHERE 1", id="alter-delete"),
    pytest.param("INSERT INTO metrics SELECT * FROM metrics", id="insert"),
    pytest.param("CREATE TABLE evil (x UInt8) ENGINE = Memory", id="create"),
    pytest.param("RENAME TABLE metrics TO gone", id="rename"),
    pytest.param("OPTIMIZE TABLE metrics FINAL", id="optimize"),
    pytest.param("DETACH TABLE metrics", id="detach"),
    pytest.param("SET readonly = 0", id="set"),
    pytest.param("SYSTEM DROP MARK CACHE", id="system"),
    pytest.param("KILL QUERY WHERE 1", id="kill"),
    pytest.param("BACKUP TABLE metrics TO File('{dir}/b.zip')", id="backup"),
    pytest.param("CREATE FUNCTION evil AS x -> x", id="create-function"),
    # more than one statement, comments
    pytest.param("SELECT 1; DROP TABLE metrics", id="two-statements"),
    pytest.param("SELECT 1;\nDROP TABLE metrics;", id="two-statements-newline"),
    pytest.param("-- SELECT\nALTER TABLE metrics DELETE WHERE 1", id="comment-disguise"),
    pytest.param("/* SELECT */ DROP TABLE metrics", id="block-comment-disguise"),
    pytest.param("# SELECT\nDROP TABLE metrics", id="hash-comment-disguise"),
    # files written
    pytest.param("SELECT 1 INTO OUTFILE '{dir}/x.pth'", id="outfile"),
    pytest.param("SELECT 1 # c\n INTO OUTFILE '{dir}/x.pth'", id="outfile-hash-comment"),
    pytest.param("SELECT 1 -- c\n INTO OUTFILE '{dir}/x.pth'", id="outfile-dash-comment"),
    pytest.param("SELECT 1 /* c */ INTO OUTFILE '{dir}/x.pth'", id="outfile-block-comment"),
    pytest.param("SELECT 1 INTO/**/OUTFILE '{dir}/x.pth' TRUNCATE", id="outfile-truncate"),
    pytest.param("SELECT 1 INTO OUTFILE '{dir}/x.gz' COMPRESSION 'gzip'", id="outfile-gzip"),
    pytest.param("SELECT 1 INTO OUTFILE '{dir}/x.pth' AND STDOUT", id="outfile-and-stdout"),
    pytest.param("WITH a AS (SELECT 1) SELECT * FROM a INTO OUTFILE '{dir}/x'", id="outfile-with"),
    pytest.param("SELECT 1 UNION ALL SELECT 2 INTO OUTFILE '{dir}/x'", id="outfile-union"),
    pytest.param("INSERT INTO FUNCTION file('{dir}/y.csv', 'CSV') SELECT 1", id="insert-function"),
    pytest.param("EXPLAIN AST SELECT 1 INTO OUTFILE '{dir}/x'", id="explain-outfile"),
    # files and the environment read
    pytest.param("SELECT file('/proc/self/environ')", id="file-environ"),
    pytest.param("SELECT file('{secret}')", id="file-scalar"),
    pytest.param("SELECT * FROM file('{secret}', 'LineAsString')", id="file-table"),
    pytest.param("DESCRIBE TABLE file('{secret}', 'LineAsString')", id="describe-file"),
    pytest.param(
        "SELECT * FROM metrics WHERE model IN (SELECT * FROM file('{secret}', 'LineAsString'))",
        id="file-in-subquery",
    ),
    pytest.param(
        "SELECT (SELECT any(line) FROM file('{secret}', 'LineAsString'))", id="file-scalar-subquery"
    ),
    pytest.param(
        "WITH s AS (SELECT * FROM file('{secret}', 'LineAsString')) SELECT * FROM s", id="file-cte"
    ),
    pytest.param(
        "SELECT * FROM metrics JOIN file('{secret}', 'LineAsString') AS f ON 1", id="file-join"
    ),
    pytest.param(
        "SELECT * FROM executable('cat {secret}', 'LineAsString', 'x String')", id="executable"
    ),
    # file() in every clause
    pytest.param(
        "SELECT window_start FROM metrics ORDER BY window_start WITH FILL STEP length(file('{secret}'))",
        id="clause-with-fill",
    ),
    pytest.param("SELECT 1 LIMIT length(file('{secret}'))", id="clause-limit"),
    pytest.param(
        "SELECT model FROM metrics LIMIT length(file('{secret}')) BY model", id="clause-limit-by"
    ),
    pytest.param(
        "SELECT n FROM metrics ORDER BY n WITH FILL INTERPOLATE (n AS length(file('{secret}')))",
        id="clause-interpolate",
    ),
    pytest.param(
        "SELECT quantile(length(file('{secret}')) / 100)(value) FROM metrics",
        id="clause-parametric",
    ),
    pytest.param(
        "SELECT sum(value) OVER (ORDER BY n ROWS BETWEEN length(file('{secret}')) PRECEDING AND CURRENT ROW) FROM metrics",
        id="clause-window-frame",
    ),
    pytest.param(
        "SELECT model FROM metrics ARRAY JOIN [file('{secret}')] AS z", id="clause-array-join"
    ),
    pytest.param(
        "SELECT model FROM metrics GROUP BY GROUPING SETS ((model), (file('{secret}')))",
        id="clause-grouping-sets",
    ),
    pytest.param(
        "SELECT model FROM metrics GROUP BY model HAVING file('{secret}') != ''", id="clause-having"
    ),
    pytest.param("SELECT * FROM metrics QUALIFY file('{secret}') != ''", id="clause-qualify"),
    pytest.param("SELECT * APPLY(x -> file('{secret}')) FROM metrics", id="clause-apply"),
    pytest.param("SELECT now() AT TIME ZONE file('{secret}')", id="clause-time-zone"),
    pytest.param("SELECT file('{secret}')::String", id="clause-cast"),
    pytest.param(
        "SELECT m.model FROM metrics AS m JOIN alerts AS a ON m.model = a.model AND file('{secret}') != ''",
        id="clause-join-on",
    ),
    pytest.param("WITH file('{secret}') AS x SELECT x", id="clause-with-expression"),
    # requests sent
    pytest.param("SELECT * FROM url('{url}', 'LineAsString')", id="url"),
    pytest.param("DESCRIBE TABLE url('{url}', 'LineAsString')", id="describe-url"),
    pytest.param("SELECT count() FROM url('{url}', LineAsString, 'x String')", id="url-count"),
    pytest.param("SELECT * FROM s3('{url}/b/k', 'LineAsString')", id="s3"),
    pytest.param("SELECT * FROM remote('127.0.0.1', system.one)", id="remote"),
    pytest.param("SELECT * FROM remoteSecure('127.0.0.1', system.one)", id="remote-secure"),
    pytest.param("SELECT * FROM cluster('default', system.one)", id="cluster"),
    pytest.param("SELECT * FROM mysql('127.0.0.1:1', 'd', 't', 'u', 'p')", id="mysql"),
    # other databases and the engine's own tables
    pytest.param("SELECT * FROM system.settings", id="system-settings"),
    pytest.param("SELECT * FROM system.server_settings", id="system-server-settings"),
    pytest.param("SELECT data_paths FROM system.tables", id="system-tables-paths"),
    pytest.param("SELECT * FROM system.databases", id="system-databases"),
    pytest.param("SELECT * FROM system.disks", id="system-disks"),
    pytest.param("SELECT * FROM system.build_options", id="system-build-options"),
    pytest.param("SELECT * FROM system.users", id="system-users"),
    pytest.param("SELECT * FROM information_schema.tables", id="information-schema"),
    pytest.param(
        "SELECT count() FROM system.numbers WHERE sipHash64(number) = 7", id="numbers-forever"
    ),
    pytest.param("SELECT * FROM metrics WHERE model IN system.tables", id="in-system-table"),
    pytest.param("SELECT * FROM metrics AS m JOIN system.one AS o ON 1", id="join-system"),
    pytest.param("SELECT * FROM merge('system', '.*')", id="merge"),
    pytest.param("SELECT * FROM {{t:Identifier}}", id="identifier-parameter"),
    pytest.param("SELECT hasColumnInTable('system', 'users', 'name')", id="has-column"),
    pytest.param("SELECT getSetting('max_memory_usage')", id="get-setting"),
    pytest.param("SELECT dictGet('d', 'x', 1)", id="dict-get"),
    pytest.param("SELECT joinGet('system.one', 'dummy', 0)", id="join-get"),
    pytest.param("SELECT filesystemAvailable()", id="filesystem"),
    pytest.param("SELECT sleep(3)", id="sleep"),
    # limits changed from inside
    pytest.param("SELECT * FROM metrics SETTINGS max_execution_time = 0", id="settings-timeout"),
    pytest.param("SELECT * FROM metrics SETTINGS readonly = 0", id="settings-readonly"),
    pytest.param("SELECT * FROM metrics FORMAT TSV", id="format"),
    pytest.param("EXPLAIN SELECT * FROM metrics", id="explain"),
    pytest.param("SHOW CREATE TABLE metrics", id="show-create"),
]
