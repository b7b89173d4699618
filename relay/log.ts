/**
 * Structured logs: one JSON object per line on stdout (errors on stderr). Debug lines (each refusal by a limit,
 * say) are written only with RELAY_LOG_LEVEL=debug: a flood must not become a flood of log lines.
 */
export type LogFields = Record<string, unknown>;

function write(level: 'debug' | 'info' | 'warn' | 'error', msg: string, fields: LogFields) {
  const line = JSON.stringify({ time: new Date().toISOString(), level, msg, ...fields });
  (level === 'error' ? process.stderr : process.stdout).write(line + '\n');
}

const debugEnabled = () => process.env['RELAY_LOG_LEVEL'] === 'debug';

export const log = {
  debug: (msg: string, fields: LogFields = {}) => {
    if (debugEnabled()) write('debug', msg, fields);
  },
  info: (msg: string, fields: LogFields = {}) => write('info', msg, fields),
  warn: (msg: string, fields: LogFields = {}) => write('warn', msg, fields),
  error: (msg: string, fields: LogFields = {}) => write('error', msg, fields),
};
