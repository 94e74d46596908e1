import { readFile } from 'node:fs/promises';
import { extname } from 'node:path';
import { ConfigError } from '../errors/config-error.ts';

/**
 * Reads one of image-syncer's configuration files. Like image-syncer, the extension chooses the
 * syntax: `.yaml`/`.yml` is YAML, anything else JSON. The top level must be a mapping.
 */
export async function readConfigDocument(file: string): Promise<Record<string, unknown>> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    throw new ConfigError(`${file}: cannot read: ${(error as Error).message}`);
  }
  const yamlSyntax = ['.yaml', '.yml'].includes(extname(file).toLowerCase());
  let document: unknown;
  try {
    if (yamlSyntax) {
      const { parseDocument, visit } = await import('yaml'); // loaded only when a YAML file is given
      const parsed = parseDocument(text);
      if (parsed.errors[0]) throw parsed.errors[0];
      // image-syncer's Go decoder reads any scalar into a string field as written, so
      // `username: 100012345678` or `password: 0042` are strings. No field here is a number, so
      // numbers keep their source text (converting afterwards would turn 0042 into "42").
      visit(parsed, {
        Scalar(_key, node) {
          if (typeof node.value === 'number' || typeof node.value === 'bigint') node.value = node.source ?? String(node.value);
        },
      });
      document = parsed.toJS();
    } else document = JSON.parse(text);
  } catch (error) {
    throw new ConfigError(`${file}: not valid ${yamlSyntax ? 'YAML' : 'JSON'}: ${(error as Error).message}`);
  }
  if (document === null || document === undefined) return {};
  if (typeof document !== 'object' || Array.isArray(document)) throw new ConfigError(`${file}: the top level must be a mapping of keys to values`);
  return document as Record<string, unknown>;
}
