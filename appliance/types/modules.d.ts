// Ambient declarations for dependencies that ship no types. Only what we use is typed loosely here.
declare module 'dcmjs';
