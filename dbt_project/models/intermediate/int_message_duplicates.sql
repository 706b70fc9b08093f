{{ config(
    materialized='incremental',
    incremental_strategy='replace_keys',
    unique_key='message_id',
    key_only_when_null='load_id',
    on_schema_change='append_new_columns',
    post_hook="{{ replace_table_hook(state_relation('watermark'), 'select max(loaded_at) as copies_loaded_until from '
                                     ~ ref('int_message_copies')) }}",
) }}

{#- Message ids that arrived more than once (int_message_copies: a messageId sent under two types,
    a contact record in two list files): the copy that stands, the first received, as within a
    type. int_messages skips the others. Few rows: most messages arrive once, and this narrow table
    is all int_messages needs to stay a view instead of a second copy of every message.

    Incremental: a build decides again only the message ids with a copy loaded since the newest
    copy the last build saw (`copies_loaded_until`), and every id it listed (one of its copies may
    be gone: a contact list's newer export, an erasure), and replaces their rows (`replace_keys`).
    Finding them reads the copies' load times and ids, not a count of every message id. An empty
    table (no id repeated, the usual case: staging already removes the repeats within a type)
    keeps its `copies_loaded_until` beside it, in `<this>__watermark`; without either (a table from
    before them) every id is decided again, by the plain count. -#}
{%- set incremental = is_incremental() -%}
{%- set listed = incremental and (this is string or holds_rows_where(this, 'copies_loaded_until is not null')) -%}
{%- set only_new = listed or (incremental and state_exists('watermark')) -%}
{%- if only_new -%}
    {%- set copies_loaded_until = "(select max(copies_loaded_until) from " ~ this ~ ")" if listed
        else "(select coalesce(max(copies_loaded_until), cast('1900-01-01' as timestamp)) from "
             ~ state_relation('watermark') ~ ")" -%}
{%- endif -%}
with
{%- if only_new %}

reconsidered as {{ materialized_cte() }} (

    select message_id
    from {{ ref('int_message_copies') }}
    where loaded_at > {{ copies_loaded_until }}

    union

    select message_id from {{ this }}

),
{%- endif %}

{#- All the copies: each reader scans them again (a kept copy of every message's keys spills at
    millions of people); the few reconsidered: kept. #}
copies as {{ unmaterialized_cte() if not only_new else '' }} (

    select message_id, received_at, loaded_at, load_id, file_path, line_number
    from {{ ref('int_message_copies') }}
    {%- if only_new %}
    where message_id in (select message_id from reconsidered)
    {%- endif %}

),

repeated as (

    select message_id
    from copies
    group by message_id
    having count(*) > 1

),

repeated_copies as (

    select copies.*
    from copies
    join repeated on repeated.message_id = copies.message_id

),

first_copies as (

    {{ deduplicate(
        'repeated_copies',
        partition_by='message_id',
        order_by='received_at nulls last, loaded_at, file_path, line_number'
    ) }}

)

select
    message_id,
    load_id,
    line_number,
    (select max(loaded_at) from {{ ref('int_message_copies') }}) as copies_loaded_until

from first_copies
{%- if incremental %}

-- The ids listed before, by their id alone: replace_keys deletes their rows first (an id that
-- turns out to have one copy left has no other; a new id has no row to delete). (A whole
-- decision: one row with a null id, which names every id.)
union all

select
    {{ 'message_id' if only_new else 'null' }} as message_id,
    null as load_id,
    null as line_number,
    null as copies_loaded_until
{%- if only_new %}

from {{ this }}
{%- endif %}
{%- endif %}
