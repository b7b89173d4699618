/**
 * Challenges that look like users' requests (issue 17, item 3): a validator's prompt and sampling parameters come
 * from the same kinds of request the gateway and the Ask page send, so a miner cannot tell a challenge by its
 * shape and answer challenges well and users cheaply. Prompts are built from a grammar whose space is far larger
 * than any cache (about 10^17 prompts), half as completions and half in the gateway's plain chat template; the
 * parameters follow the mix of real requests: greedy or seeded sampling with a temperature, sometimes a nucleus,
 * lengths from a few tokens to the protocol's limit, and sometimes a stop string.
 */
import { MAX_NEW_TOKENS, type GenerateParams } from '../inference/protocol.ts';

const SUBJECTS = [
  'a little cat',
  'the old dog',
  'a small bird',
  'the tall tree',
  'a kind girl',
  'the big ship',
  'a brave boy',
  'the quiet river',
  'a red ball',
  'the busy miner',
  'a tired validator',
  'the happy sun',
  'a shy fox',
  'the grumpy bear',
  'a curious rabbit',
  'the little robot',
  'a friendly dragon',
  'the young queen',
  'an old farmer',
  'a clever mouse',
  'the lost puppy',
  'a sleepy owl',
  'the silly monkey',
  'a gentle giant',
  'the strong horse',
  'a tiny ant',
  'the proud lion',
  'a lonely whale',
  'the fast car',
  'a wise turtle',
  'the green frog',
  'a playful kitten',
  'the blue butterfly',
  'a small boat',
  'the new teacher',
  'a happy baker',
  'the kind doctor',
  'a funny clown',
  'the sad snowman',
  'a bright star',
];
const VERBS = [
  'found',
  'wanted',
  'saw',
  'made',
  'lost',
  'shared',
  'heard',
  'carried',
  'painted',
  'followed',
  'built',
  'opened',
  'hid',
  'chased',
  'fixed',
  'dropped',
  'planted',
  'counted',
  'washed',
  'remembered',
  'borrowed',
  'climbed',
  'cooked',
  'found out about',
  'dreamed of',
  'looked for',
  'played with',
  'talked to',
  'waited for',
  'laughed at',
  'sang about',
  'read about',
  'gave away',
  'picked up',
  'ran after',
  'jumped over',
  'cleaned',
  'wrapped',
  'drew',
  'kept',
];
const OBJECTS = [
  'a shiny stone',
  'the park',
  'a new friend',
  'a secret',
  'the moon',
  'a warm cake',
  'the road home',
  'a lost key',
  'a song',
  'the last token',
  'a big red box',
  'an old map',
  'the garden gate',
  'a yellow kite',
  'a little flower',
  'the school bus',
  'a magic hat',
  'a wooden spoon',
  'the rainbow',
  'a soft blanket',
  'a bag of apples',
  'the tall tower',
  'a broken toy',
  'a letter',
  'the missing shoe',
  'a jar of honey',
  'the noisy drum',
  'a paper plane',
  'the dark cave',
  'a golden coin',
  'a cup of tea',
  'the snowy hill',
  'a sleeping cat',
  'a treasure chest',
  'the funny picture',
  'a green leaf',
  'the last cookie',
  'a striped sock',
  'the old bridge',
  'a tiny seed',
];
const PLACES = [
  'in the forest',
  'by the sea',
  'at school',
  'in the kitchen',
  'under the bed',
  'on the hill',
  'in the garden',
  'at the market',
  'near the river',
  'in the city',
  'on a boat',
  'in the snow',
  'at the zoo',
  'in the library',
  'behind the house',
  'on the farm',
  'in the rain',
  'at the beach',
  'in a small town',
  'on the moon',
  'in the sky',
  'at the party',
  'in the barn',
  'near the castle',
  'in the playground',
  'at the station',
  'in the attic',
  'by the lake',
  'in the desert',
  'under a tree',
];
const TIMES = [
  'One day',
  'Once upon a time',
  'Yesterday',
  'Every morning',
  'Last summer',
  'On a rainy day',
  'After school',
  'At night',
  'Long ago',
  'One sunny afternoon',
  'On her birthday',
  'In the winter',
  'Before dinner',
  'Early in the morning',
  'On a windy day',
  'Late at night',
  'When spring came',
  'After lunch',
  'On Sunday',
  'A long time ago',
];
const ENDINGS = [
  '',
  '',
  '',
  ' Then',
  ' But',
  ' So',
  ' Suddenly,',
  ' Later,',
  ' The next day,',
  ' "Look!" said',
  ' It was',
  ' Everyone',
  ' After that,',
  ' At last,',
  ' That was when',
];
const QUESTIONS = [
  'Tell me a short story about',
  'Write a story about',
  'What happened to',
  'Can you tell me about',
  'Please write a few sentences about',
  'Make up a tale about',
  'Describe',
  'Write a bedtime story about',
  'Tell a funny story about',
  'Write a short poem about',
];

/** Uniform reals in [0, 1), from any source (the validator uses crypto; tests a seeded one). */
export type Random = () => number;

const pick = <T>(rand: Random, list: readonly T[]): T => list[Math.floor(rand() * list.length)]!;
const capitalised = (s: string) => s[0]!.toUpperCase() + s.slice(1);

function sentence(rand: Random): string {
  return `${pick(rand, TIMES)}, ${pick(rand, SUBJECTS)} ${pick(rand, VERBS)} ${pick(rand, OBJECTS)} ${pick(rand, PLACES)}.`;
}

/** A completion prompt: one to three sentences of a story, sometimes with the start of the next one. */
function storyPrompt(rand: Random): string {
  const sentences = Array.from({ length: 1 + Math.floor(rand() * 3) }, () => sentence(rand));
  return sentences.join(' ') + pick(rand, ENDINGS);
}

/** A chat prompt in the gateway's plain template (gateway/chat-template.ts), as a one-message chat renders. */
function chatPrompt(rand: Random): string {
  const ask = `${pick(rand, QUESTIONS)} ${pick(rand, SUBJECTS)} who ${pick(rand, VERBS)} ${pick(rand, OBJECTS)} ${pick(rand, PLACES)}.`;
  return `User: ${capitalised(ask)}\nAssistant:`;
}

const LENGTHS = [8, 12, 16, 16, 24, 32, 32, 48, 64, 96, MAX_NEW_TOKENS];
const TEMPERATURES = [0.3, 0.5, 0.6, 0.7, 0.7, 0.8, 0.8, 0.9, 1, 1, 1.2];
const TOP_PS = [undefined, undefined, 0.8, 0.9, 0.95];

/** One challenge's params for `model`, drawn with `rand`. */
export function challengeParams(model: string, rand: Random): GenerateParams {
  const chat = rand() < 0.5;
  const prompt = chat ? chatPrompt(rand) : storyPrompt(rand);
  const maxNewTokens = pick(rand, LENGTHS);
  const params: GenerateParams = { model, prompt, maxNewTokens };
  if (rand() < 0.6) {
    const topP = pick(rand, TOP_PS);
    params.sampling = {
      seed: Math.floor(rand() * 2 ** 32),
      temperature: pick(rand, TEMPERATURES),
      ...(topP !== undefined ? { topP } : {}),
    };
  }
  if (rand() < 0.25) params.stop = chat ? ['\nUser:'] : ['\n\n'];
  return params;
}

/** How many distinct prompts the grammar can make (for the docs and a test): completions plus chats. */
export function promptSpace(): number {
  const s = TIMES.length * SUBJECTS.length * VERBS.length * OBJECTS.length * PLACES.length;
  const stories = (s + s ** 2 + s ** 3) * ENDINGS.length;
  const chats = QUESTIONS.length * SUBJECTS.length * VERBS.length * OBJECTS.length * PLACES.length;
  return stories + chats;
}

/** Uniform reals from the platform's cryptographic generator: a miner cannot predict the next challenge. */
export const cryptoRandom: Random = () => crypto.getRandomValues(new Uint32Array(1))[0]! / 2 ** 32;
