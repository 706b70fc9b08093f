{#- Hashes: SHA-256 of personal values, 64-bit row hashes for fingerprints. -#}

{#- SHA-256 of a string, as 64 lower-case hex digits. -#}
{% macro sha256_hex(expr) -%}
    {{ return(adapter.dispatch('sha256_hex', 'identity_warehouse')(expr)) }}
{%- endmacro %}

{% macro default__sha256_hex(expr) -%}
    sha256({{ expr }})
{%- endmacro %}

{% macro spark__sha256_hex(expr) -%}
    sha2({{ expr }}, 256)
{%- endmacro %}

{#- A 64-bit hash of the values, for fingerprints compared build to build (not shown to anyone):
    `bit_xor` over the rows of a group gives the group's, whatever their order. -#}
{% macro row_hash(expressions) -%}
    {{ return(adapter.dispatch('row_hash', 'identity_warehouse')(expressions)) }}
{%- endmacro %}

{% macro default__row_hash(expressions) -%}
    hash({{ expressions | join(', ') }})
{%- endmacro %}

{% macro spark__row_hash(expressions) -%}
    xxhash64({{ expressions | join(', ') }})
{%- endmacro %}
