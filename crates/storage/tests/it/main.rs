//! The storage suite, run against every backend.

// The suite's helpers run only inside tests, where a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

mod fixtures;
mod memory;
mod paging_props;
mod reads;
mod sled;
mod suite;

/// Instantiates every suite test for one backend. `$make` returns a fresh store and whatever
/// must outlive it (a temporary directory).
macro_rules! suite_tests {
    ($make:expr) => {
        $crate::suite_tests!($make;
            an_empty_store_has_no_blocks_entries_or_state,
            committed_blocks_read_back_exactly,
            state_items_reflect_every_change_including_deletes,
            transactions_decisions_and_releases_are_found,
            a_block_at_the_wrong_height_is_refused_and_changes_nothing,
            a_block_with_the_wrong_first_entry_is_refused_and_changes_nothing,
            a_block_with_missing_leaf_hashes_is_refused_and_changes_nothing,
            audit_pages_match_a_brute_force_filter_for_every_filter,
            audit_pages_continue_exactly_after_a_small_scan_budget,
            audit_time_filters_hold_when_decision_times_go_backwards,
            an_empty_requester_or_purpose_set_matches_nothing,
            a_cursor_at_or_past_the_end_returns_an_empty_last_page,
            an_old_store_gets_its_missing_indexes_when_opened,
            index_rows_without_summaries_page_as_before,
            blocks_committed_in_one_batch_are_stored_as_if_committed_one_by_one,
            blocks_loaded_offline_are_stored_as_if_committed_one_by_one,
        );
    };
    ($make:expr; $($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                let (store, _guard) = $make();
                crate::suite::$name(store);
            }
        )*
    };
}
pub(crate) use suite_tests;
