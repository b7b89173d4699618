/**
 * Relay flags for tests and local networks that run many nodes on one machine: every node then reaches the
 * relay from 127.0.0.1, which the per-IP limits (../limits.ts) count like any other address. A real deployment
 * keeps the low defaults; a test that exercises a limit passes its own value after these (the last flag wins).
 */
export const LOOPBACK_TEST_LIMITS: readonly string[] = [
  ...['--max-reservations-per-ip', '100000'],
  ...['--max-connections-per-ip', '400000'],
  ...['--connection-rate-per-ip', '1000000'],
];
