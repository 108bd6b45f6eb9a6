// Validates an OpenAPI document with @apidevtools/swagger-parser: the
// OpenAPI 3.1 schema, every $ref resolved (no cycles of references alone).
import SwaggerParser from '@apidevtools/swagger-parser';

const file = process.argv[2];
// Circular references are refused: a schema that is only a reference to
// itself (or a loop of them) describes nothing.
const api = await SwaggerParser.validate(file, { dereference: { circular: false } });
const ops = Object.values(api.paths).reduce((n, p) => n + Object.keys(p).length, 0);
console.log(`valid OpenAPI ${api.openapi}: ${ops} operations, ${Object.keys(api.components.schemas).length} schemas`);
