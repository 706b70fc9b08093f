{#- Message ids that arrived more than once (int_message_copies: a messageId sent under two types,
    a contact record in two list files): the copy that stands, the first received, as within a
    type. int_messages skips the others. Few rows: most messages arrive once, and this narrow table
    is all int_messages needs to stay a view instead of a second copy of every message. -#}
with

copies as (

    select message_id, received_at, loaded_at, load_id, file_path, line_number
    from {{ ref('int_message_copies') }}

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

select message_id, load_id, line_number
from first_copies
