/** Structured logs: one JSON object per line on stdout (errors on stderr). */
export type LogFields = Record<string, unknown>;

function write(level: 'info' | 'warn' | 'error', msg: string, fields: LogFields) {
  const line = JSON.stringify({ time: new Date().toISOString(), level, msg, ...fields });
  (level === 'error' ? process.stderr : process.stdout).write(line + '\n');
}

export const log = {
  info: (msg: string, fields: LogFields = {}) => write('info', msg, fields),
  warn: (msg: string, fields: LogFields = {}) => write('warn', msg, fields),
  error: (msg: string, fields: LogFields = {}) => write('error', msg, fields),
};
