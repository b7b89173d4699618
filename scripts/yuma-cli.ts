/**
 * npm run --silent yuma -- FILE [--replay]
 *
 * Reads one Yuma case in the format of ../shared/yuma/vectors.json and prints the engine's output as JSON.
 * Bad input exits 1 with one line on stderr saying what is wrong and where. Integers are exact: the file is read
 * without passing integer literals through a float, so u64 stakes and rao amounts beyond 2^53 keep every digit.
 */
import { readFileSync } from 'node:fs';
import { CaseFormatError, parseCase, parseJsonExact, runCase, toJson } from '../shared/yuma/index.ts';

function fail(message: string): never {
  process.stderr.write(`yuma: ${message}\n`);
  process.exit(1);
}

const args = process.argv.slice(2);
const replay = args.includes('--replay');
const unknown = args.filter((a) => a.startsWith('--') && a !== '--replay');
if (unknown.length > 0) fail(`unknown option ${unknown[0]} (usage: yuma FILE [--replay])`);
const files = args.filter((a) => !a.startsWith('--'));
if (files.length !== 1) fail('expected exactly one FILE (usage: yuma FILE [--replay])');
const file = files[0]!;

let text: string;
try {
  text = readFileSync(file, 'utf8');
} catch (err) {
  fail(`cannot read ${file}: ${(err as Error).message}`);
}

let data: unknown;
try {
  data = parseJsonExact(text);
} catch (err) {
  fail(`${file}: not valid JSON: ${(err as Error).message}`);
}

if (Array.isArray(data)) {
  if (data.length !== 1) fail(`${file}: holds an array of ${data.length} cases; pass a file with one case`);
  data = data[0];
}

try {
  const result = runCase(parseCase(data), { replay });
  process.stdout.write(toJson(result) + '\n');
} catch (err) {
  if (err instanceof CaseFormatError) fail(`${file}: ${err.message}`);
  throw err;
}
