export { startScriptedModel, type ScriptedModel, type ScriptedModelOptions, type ScriptedRequest } from './server.ts';
export { loadScript, parseScript, ScriptError, SESSIONS, type Script, type ScriptTurn, type ScriptToolCall, type SessionName } from './script.ts';
export { MODEL_ID } from './protocol.ts';
