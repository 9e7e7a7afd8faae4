// dcmjs ships no types; only what the bundle uses is used loosely.
declare module 'dcmjs';
