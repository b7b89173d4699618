/** Helpers for Yuma tests: cases written as text, for integers that must not pass through a float. */

/**
 * Three uids: validators 0 and 1 both give miner 2 all their weight. The stake threshold equals validator 0's
 * stake, so validator 1 (one rao less) counts as zero stake: only validator 0 earns dividends. Read through a
 * float, both stakes would round to the same value and split the dividends.
 */
export function thresholdCase(threshold: string, below: string, rao: string): string {
  return `{"name": "exact u64", "kind": "epoch",
    "params": {"kappa_u16": 32767, "bonds_penalty_u16": 65535, "bonds_moving_average_ppm": 900000,
      "yuma3_enabled": false, "liquid_alpha_enabled": false, "alpha_low_u16": 45875, "alpha_high_u16": 58982,
      "alpha_sigmoid_steepness": 1000, "max_allowed_validators": 64, "stake_threshold": ${threshold},
      "activity_cutoff_blocks": 5000, "tempo": 360, "last_mechanism_step_block": 0, "owner_uid": null,
      "rao_emission": ${rao}, "commit_reveal_masking": false},
    "n": 3, "current_block": 1000, "stake": [${threshold}, ${below}, 0],
    "validator_permit": [true, true, false], "last_update": [1000, 1000, 1000], "block_at_registration": [1, 1, 1],
    "weights": [[0, 0, 65535], [0, 0, 65535], [0, 0, 0]], "bonds_prev": [[0, 0, 0], [0, 0, 0], [0, 0, 0]]}`;
}
