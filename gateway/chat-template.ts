/**
 * Chat messages to the one prompt string a miner generates from. A model whose tokenizer_config.json has a
 * `chat_template` is rendered with it (transformers.js's own apply_chat_template, with the generation prompt
 * added); every other model gets the plain template below, documented in gateway/README.md:
 *
 *   <system messages, joined by a blank line>\n\n      (only when there are any)
 *   User: <content>\n
 *   Assistant: <content>\n
 *   ...
 *   Assistant:
 */
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { PreTrainedTokenizer } from '@huggingface/transformers';
import type { ChatMessage } from './openai.ts';

export type ChatTemplate = { kind: 'model' | 'plain'; render(messages: ChatMessage[]): string };

export function plainTemplate(messages: ChatMessage[]): string {
  const system = messages.filter((m) => m.role === 'system').map((m) => m.content);
  const turns = messages
    .filter((m) => m.role !== 'system')
    .map((m) => `${m.role === 'user' ? 'User' : 'Assistant'}: ${m.content}\n`);
  return `${system.length > 0 ? `${system.join('\n\n')}\n\n` : ''}${turns.join('')}Assistant:`;
}

const PLAIN: ChatTemplate = { kind: 'plain', render: plainTemplate };

/**
 * The template for `modelId`: its tokenizer's, from the first of `modelDirs` that holds the model's tokenizer
 * files and a chat_template, else the plain one. A tokenizer that does not load is reported, never guessed at.
 */
export async function chatTemplateFor(modelId: string, modelDirs: readonly string[]): Promise<ChatTemplate> {
  for (const dir of modelDirs) {
    const configPath = join(dir, modelId, 'tokenizer_config.json');
    const tokenizerPath = join(dir, modelId, 'tokenizer.json');
    if (!existsSync(configPath) || !existsSync(tokenizerPath)) continue;
    const config = JSON.parse(await readFile(configPath, 'utf8')) as { chat_template?: unknown };
    if (!config.chat_template) return PLAIN;
    const tokenizer = new PreTrainedTokenizer(JSON.parse(await readFile(tokenizerPath, 'utf8')), config);
    return {
      kind: 'model',
      render: (messages) =>
        tokenizer.apply_chat_template(messages, { tokenize: false, add_generation_prompt: true }) as string,
    };
  }
  return PLAIN;
}
