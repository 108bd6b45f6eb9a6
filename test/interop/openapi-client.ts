// A client of the admin API generated from docs/openapi.json by
// openapi-typescript, used as a program would: TestOpenAPIClientCompiles
// generates api.d.ts beside this file and compiles both with tsc --strict.
import type { paths, components } from './api.js';
type Tenant = components['schemas']['Tenant'];
type CreateUser = paths['/api/v1/users']['post']['requestBody']['content']['application/json'];
const t: Pick<Tenant, 'slug'> = { slug: 'acme' };
const u: Partial<CreateUser> = { email: 'ada@example.com' };
export { t, u };
