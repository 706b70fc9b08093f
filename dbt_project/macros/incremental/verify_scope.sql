{#- What a data test reads: a build verifies what it wrote; verification (the verify_warehouse job,
    `identity-warehouse verify`, a --full-refresh build) reads everything.

    dbt hands the tested relation of every data test to get_where_subquery. With the var
    `verify_scope: written` (the default) and a model whose config names the column every build
    stamps on the rows it writes (`meta: {build_watermark: <column>}`, set to build_timestamp()),
    the test reads only the rows this build wrote, the rows whose stamp is this build's start
    (build_timestamp() is dbt's run_started_at: the same in the test as in the model it tests):
    - `unique`, `unique_combination_of_columns`: every row, old or new, sharing its key with a row
      written (a new row's key must not exist elsewhere), found through the written keys;
    - any other test (not_null, accepted_values, the child side of relationships, ...): the rows written.
    A model without a watermark (a table or view rebuilt whole each build, or an incremental model
    that does not stamp every row it writes) is tested whole. With `verify_scope: all`, or a
    --full-refresh build, every test reads the whole table, as dbt does. The test's own `where`
    config applies in both. A violation an earlier build let through is caught by the next whole
    verification, not by every build (docs/incremental-builds.md). -#}
{% macro default__get_where_subquery(relation) -%}
    {%- set conditions = [] -%}
    {%- set where = config.get('where') -%}
    {%- if where %}{% do conditions.append('(' ~ where ~ ')') %}{% endif -%}
    {%- set written = written_rows_condition(relation) -%}
    {%- if written %}{% do conditions.append(written) %}{% endif -%}
    {%- if conditions -%}
        {%- set filtered -%}
            (select * from {{ relation }} where {{ conditions | join(' and ') }}) dbt_subquery
        {%- endset -%}
        {%- do return(filtered) -%}
    {%- endif -%}
    {%- do return(relation) -%}
{%- endmacro %}

{#- The whole-table scopes: 'all' reads every row; 'written' (the default) what the build wrote. -#}
{% macro verify_scope() -%}
    {%- set scope = var('verify_scope', 'written') -%}
    {%- if scope not in ['written', 'all'] -%}
        {{ exceptions.raise_compiler_error("var verify_scope must be 'written' or 'all', not '" ~ scope ~ "'") }}
    {%- endif -%}
    {{ return('all' if flags.FULL_REFRESH else scope) }}
{%- endmacro %}

{#- The condition on `relation` that selects what the running test reads of it, or none (all rows).
    `model` is the test node here. -#}
{% macro written_rows_condition(relation) -%}
    {%- if not execute or verify_scope() == 'all' or model.resource_type != 'test' -%}
        {{ return(none) }}
    {%- endif -%}
    {%- set tested = graph.nodes.get(model.attached_node) if model.attached_node else none -%}
    {%- set watermark = (tested.config.meta or {}).get('build_watermark') if tested else none -%}
    {%- if not watermark -%}
        {{ return(none) }}
    {%- endif -%}
    {%- set stamped = watermark ~ ' >= ' ~ build_timestamp() -%}
    {%- set test = model.test_metadata or {} -%}
    {%- set arguments = test.get('kwargs', {}) -%}
    {#- The written keys are looked up by their hash: one integer per row, not a string, so a build
        that wrote every row (a first build) keeps 12 M integers in memory, not 12 M ids, which
        DuckDB cannot spill from this semi-join. A collision only widens the read. -#}
    {%- if test.get('name') == 'unique' -%}
        {%- set key = 'hash(' ~ arguments['column_name'] ~ ')' -%}
    {%- elif test.get('name') == 'unique_combination_of_columns' -%}
        {%- set key = 'hash(' ~ arguments['combination_of_columns'] | join(', ') ~ ')' -%}
    {%- else -%}
        {{ return('(' ~ stamped ~ ')') }}
    {%- endif -%}
    {{ return('(' ~ key ~ ' in (select ' ~ key ~ ' from ' ~ relation ~ ' where ' ~ stamped ~ '))') }}
{%- endmacro %}
