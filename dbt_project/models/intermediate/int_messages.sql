{{ config(materialized='view', meta={'build_watermark': 'staged_at'}) }}

{#- Every accepted message once, in the shape of int_message_copies. A messageId seen under two
    types keeps the first received, as within a type (int_message_duplicates names that copy). A
    view: a table would be one more copy of every message's JSON to write each run. Its data tests
    read the messages the build staged (`staged_at`, macros/incremental/verify_scope.sql). -#}
with

copies as (

    select * from {{ ref('int_message_copies') }}

),

duplicates as (

    select * from {{ ref('int_message_duplicates') }}

),

first_copies as (

    select copies.*
    from copies
    left join duplicates
        on duplicates.message_id = copies.message_id
    where duplicates.message_id is null
        or (duplicates.load_id = copies.load_id and duplicates.line_number = copies.line_number)

)

select * from first_copies
