{#- dbt's should_full_refresh, which every incremental materialization and is_incremental() ask,
    with one more reason to rebuild a model from scratch: the build names it in the environment
    variable IDENTITY_WAREHOUSE_REBUILD_FROM_SCRATCH (comma-separated model names), because its
    code or the code of a model it reads changed since its last build (orchestration/location/
    build_state.py). A model configured `full_refresh: false` holds history and is never rebuilt. -#}
{% macro should_full_refresh() %}
  {%- set config_full_refresh = config.get('full_refresh') -%}
  {%- if config_full_refresh is none -%}
    {%- set named = env_var('IDENTITY_WAREHOUSE_REBUILD_FROM_SCRATCH', '').split(',') -%}
    {%- set config_full_refresh = flags.FULL_REFRESH or model.name in named -%}
  {%- endif -%}
  {%- do return(config_full_refresh) -%}
{% endmacro %}
