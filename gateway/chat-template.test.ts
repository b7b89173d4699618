/**
 * Chat messages to one prompt: the plain template exactly as gateway/README.md documents it, and the model's own
 * template (tokenizer_config.json's chat_template) where it has one.
 */
import { copyFile, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chatTemplateFor, plainTemplate } from './chat-template.ts';
import type { ChatMessage } from './openai.ts';

const MODELS = join(dirname(fileURLToPath(import.meta.url)), '..', 'generated', 'models');
const MODEL = 'webtensor/tiny-llama';

const conversation: ChatMessage[] = [
  { role: 'system', content: 'You tell short stories.' },
  { role: 'user', content: 'Tell me about a cat.' },
  { role: 'assistant', content: 'A cat sat.' },
  { role: 'system', content: 'Keep it under ten words.' },
  { role: 'user', content: 'And a dog?' },
];

describe('plainTemplate', () => {
  it('renders user and assistant turns, then the generation prompt', () => {
    expect(plainTemplate([{ role: 'user', content: 'Hello' }])).toBe('User: Hello\nAssistant:');
    expect(
      plainTemplate([
        { role: 'user', content: 'Hi' },
        { role: 'assistant', content: 'Hello!' },
        { role: 'user', content: 'How are you?' },
      ]),
    ).toBe('User: Hi\nAssistant: Hello!\nUser: How are you?\nAssistant:');
  });

  it('puts system messages first, joined by a blank line, then a blank line', () => {
    expect(
      plainTemplate([
        { role: 'system', content: 'You tell short stories.' },
        { role: 'user', content: 'Tell me about a cat.' },
      ]),
    ).toBe('You tell short stories.\n\nUser: Tell me about a cat.\nAssistant:');
    expect(plainTemplate(conversation)).toBe(
      'You tell short stories.\n\nKeep it under ten words.\n\n' +
        'User: Tell me about a cat.\nAssistant: A cat sat.\nUser: And a dog?\nAssistant:',
    );
  });

  it('keeps contents as they are, and renders no messages as the generation prompt alone', () => {
    expect(plainTemplate([{ role: 'user', content: 'line one\nline two' }])).toBe(
      'User: line one\nline two\nAssistant:',
    );
    expect(plainTemplate([{ role: 'system', content: 'Only a system message.' }])).toBe(
      'Only a system message.\n\nAssistant:',
    );
    expect(plainTemplate([])).toBe('Assistant:');
  });
});

describe('chatTemplateFor', () => {
  const TEMPLATE =
    '{% for m in messages %}<|{{ m.role }}|>{{ m.content }}\n{% endfor %}{% if add_generation_prompt %}<|assistant|>{% endif %}';
  let dir = '';

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'webtensor-chat-template-'));
    const model = join(dir, 'test', 'templated');
    await mkdir(model, { recursive: true });
    await copyFile(join(MODELS, MODEL, 'tokenizer.json'), join(model, 'tokenizer.json'));
    const config = JSON.parse(await readFile(join(MODELS, MODEL, 'tokenizer_config.json'), 'utf8')) as object;
    await writeFile(join(model, 'tokenizer_config.json'), JSON.stringify({ ...config, chat_template: TEMPLATE }));
    // A copy of the model without a chat_template, to be found only after the directory that lacks the model.
    await mkdir(join(dir, 'plain', MODEL), { recursive: true });
    for (const file of ['tokenizer.json', 'tokenizer_config.json'])
      await copyFile(join(MODELS, MODEL, file), join(dir, 'plain', MODEL, file));
  });

  afterAll(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('gives the plain template to a model whose tokenizer has no chat_template', async () => {
    const template = await chatTemplateFor(MODEL, [MODELS]);
    expect(template.kind).toBe('plain');
    expect(template.render(conversation)).toBe(plainTemplate(conversation));
  });

  it("renders with the model's own chat_template, generation prompt added", async () => {
    const template = await chatTemplateFor('test/templated', [join(dir, 'missing'), dir]);
    expect(template.kind).toBe('model');
    expect(
      template.render([
        { role: 'system', content: 'Be kind.' },
        { role: 'user', content: 'Hi' },
        { role: 'assistant', content: 'Hello!' },
        { role: 'user', content: 'Bye' },
      ]),
    ).toBe('<|system|>Be kind.\n<|user|>Hi\n<|assistant|>Hello!\n<|user|>Bye\n<|assistant|>');
  });

  it('takes the first directory that holds the model', async () => {
    expect((await chatTemplateFor(MODEL, [join(dir, 'plain'), dir])).kind).toBe('plain');
    // A directory with only one of the two tokenizer files does not hold the model.
    await mkdir(join(dir, 'half', 'test', 'templated'), { recursive: true });
    await copyFile(
      join(dir, 'test', 'templated', 'tokenizer_config.json'),
      join(dir, 'half', 'test', 'templated', 'tokenizer_config.json'),
    );
    expect((await chatTemplateFor('test/templated', [join(dir, 'half')])).kind).toBe('plain');
    expect((await chatTemplateFor('test/templated', [join(dir, 'half'), dir])).kind).toBe('model');
  });

  it('falls back to the plain template where no directory holds the model', async () => {
    expect((await chatTemplateFor('test/templated', [])).kind).toBe('plain');
    const template = await chatTemplateFor('test/absent', [dir, MODELS, join(dir, 'missing')]);
    expect(template.kind).toBe('plain');
    expect(template.render(conversation)).toBe(plainTemplate(conversation));
  });
});
